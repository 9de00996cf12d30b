/**
 * A client process of the fan-out benchmark (forked by bench/fanout.bench.ts; not a
 * benchmark itself): the publisher, or a group of subscribers, of one of the four systems:
 *
 *   sfu      the node: werift bots from '@geosfu/client/bot' joining through its signalling
 *   naive    werift PeerConnections against bench/fanout-forwarder.ts naive (HTTP offers)
 *   udp      dgram sockets with the SRTP-like AES-128-GCM of bench/fanout-common.ts
 *   janus    Janus's streaming plugin (bench/janus-server.ts): plain RTP in over dgram,
 *            viewers are werift PeerConnections speaking Janus's HTTP API (watch, start)
 *
 * `subscribers` answers with each subscriber's local UDP port (udp: its socket; sfu: its
 * nominated candidate's), for bench/kernel-sink.ts.
 *
 * The publisher sends probe packets (bench/fanout-common.ts buildPayload) at a given rate for
 * a given time; subscribers count the packets of the current step and their latency.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Bot } from '@geosfu/client/bot';
import { RTCPeerConnection, type RTCRtpSender, RtpHeader, RtpPacket } from 'werift';
import {
  localSdp,
  peerConfig,
  publisherVideoCodecs,
  waitForConnected,
} from '../packages/client/src/bot/peer.js';
import {
  BENCH_UDP_BUFFER,
  buildPayload,
  enlargeBuffers,
  keyFor,
  nowMs,
  open,
  rtpHeader,
  StepCounter,
  seal,
  serve,
} from './fanout-common.js';
import { JANUS_STREAMING, JanusSession } from './janus-session.js';

type Mode = 'sfu' | 'naive' | 'udp' | 'janus';
const HOST = ['127.0.0.1'];
const ROOM = 'fanout';
const CONNECT_MS = 20_000;

const counter = new StepCounter();
const closers: (() => unknown)[] = [];
/** Sends one packet of the current step. */
let sendPacket: ((step: number, index: number, keyframe: boolean) => void) | undefined;

const config = (hostAddresses = HOST) =>
  peerConfig({ hostAddresses }, { video: publisherVideoCodecs('vp8'), audio: [] });

async function post(url: string, sdp: string): Promise<string> {
  const res = await fetch(url, { method: 'POST', body: sdp });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
  return text;
}

/** RTP through a werift sender; sequence numbers and timestamps continue from `sender`'s. */
function weriftSend(sender: RTCRtpSender, send: (rtp: RtpPacket) => Promise<void>) {
  // Private in werift's types: the last sequence number and timestamp the sender sent.
  const last = sender as unknown as { sequenceNumber?: number; timestamp?: number };
  let seq = ((last.sequenceNumber ?? 0) + 1) & 0xffff;
  const ts0 = last.timestamp ?? 0;
  const t0 = nowMs();
  return (step: number, index: number, keyframe: boolean) => {
    const header = new RtpHeader({
      payloadType: 96,
      sequenceNumber: seq,
      timestamp: (ts0 + Math.round((nowMs() - t0) * 90)) >>> 0,
      marker: true,
    });
    seq = (seq + 1) & 0xffff;
    send(new RtpPacket(header, buildPayload(step, index, keyframe))).catch(() => {});
  };
}

async function publisher(args: {
  mode: Mode;
  url?: string;
  port?: number;
  /** janus: the address the mountpoint takes RTP on (default 127.0.0.1). */
  host?: string;
  room?: string;
  /**
   * sfu only: hand the packets to werift's DTLS transport (SRTP and the socket) instead of its
   * RTCRtpSender (which parses, caches for NACK and chains promises per packet): the same
   * packets on the wire at a fraction of the publisher's CPU (bench/cores.bench.ts, where the
   * clients share the cores with the node processes). Nothing answers the node's NACKs then.
   */
  viaTransport?: boolean;
}): Promise<void> {
  if (args.mode === 'sfu') {
    const bot = await Bot.connect({
      url: args.url as string,
      route: false,
      room: args.room ?? ROOM,
      identity: 'pub',
      // Its own synthetic source is silenced below: this process sends the probe packets.
      publish: { video: true, audio: false, fps: 1, bitrate: 10_000, keyframeIntervalMs: 0 },
      subscribe: false,
      hostAddresses: HOST,
      connectTimeoutMs: CONNECT_MS,
    });
    closers.push(() => bot.close());
    const t = bot.peerConnections.publisher?.getTransceivers().find((x) => x.kind === 'video');
    if (!t) throw new Error('the bot has no video transceiver');
    const sender = t.sender;
    const real = sender.sendRtp.bind(sender);
    // The bot's source would interleave its own sequence numbers with ours.
    (sender as { sendRtp: RTCRtpSender['sendRtp'] }).sendRtp = async () => {};
    const transport = sender.dtlsTransport;
    sendPacket = weriftSend(sender, (rtp) => {
      if (!args.viaTransport) return real(rtp);
      rtp.header.ssrc = sender.ssrc;
      rtp.header.payloadType = sender.codec?.payloadType ?? rtp.header.payloadType;
      return transport.sendRtp(rtp.payload, rtp.header).then(() => undefined);
    });
  } else if (args.mode === 'naive') {
    const pc = new RTCPeerConnection(config());
    closers.push(() => pc.close());
    const t = pc.addTransceiver('video', { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await post(`${args.url}/publish`, localSdp(pc));
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await waitForConnected(pc, CONNECT_MS);
    sendPacket = weriftSend(t.sender, (rtp) => t.sender.sendRtp(rtp));
  } else if (args.mode === 'janus') {
    // Janus's streaming plugin takes unencrypted RTP in: the same header and payloads, no SRTP.
    const socket = createSocket('udp4');
    closers.push(() => socket.close());
    let seq = 0;
    const t0 = nowMs();
    sendPacket = (step, index, keyframe) => {
      const header = rtpHeader(0x1234, seq++, Math.round((nowMs() - t0) * 90));
      const host = args.host ?? (HOST[0] as string);
      socket.send([header, buildPayload(step, index, keyframe)], args.port as number, host);
    };
  } else {
    const socket = createSocket('udp4');
    closers.push(() => socket.close());
    const key = keyFor('publisher');
    let seq = 0;
    const t0 = nowMs();
    sendPacket = (step, index, keyframe) => {
      const header = rtpHeader(0x1234, seq++, Math.round((nowMs() - t0) * 90));
      socket.send(
        seal(key, header, buildPayload(step, index, keyframe)),
        args.port as number,
        HOST[0],
      );
    };
  }
}

async function subscribers(args: {
  mode: Mode;
  count: number;
  offset: number;
  url?: string;
  room?: string;
  /** janus: the streaming plugin's mountpoint. */
  mountpoint?: number;
  /** janus: the local address for ICE (Janus runs in a namespace of its own). */
  hostAddress?: string;
}): Promise<{ ports: number[] }> {
  const ports: number[] = [];
  const one = async (i: number) => {
    if (args.mode === 'sfu') {
      const bot = await Bot.connect({
        url: args.url as string,
        route: false,
        room: args.room ?? ROOM,
        identity: `sub-${args.offset + i}`,
        hostAddresses: HOST,
        connectTimeoutMs: CONNECT_MS,
      });
      closers.push(() => bot.close());
      // Attach to the video track once the node's subscriber offer was applied.
      const deadline = Date.now() + CONNECT_MS;
      for (;;) {
        const track = bot.peerConnections.subscriber
          ?.getTransceivers()
          .flatMap((t) => t.receiver.tracks)
          .find((tr) => tr.kind === 'video');
        if (track) {
          track.onReceiveRtp.subscribe((rtp) => counter.onPayload(rtp.payload));
          break;
        }
        if (Date.now() > deadline) throw new Error(`sub-${args.offset + i}: no video track`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const pc = bot.peerConnections.subscriber;
      if (pc) {
        await waitForConnected(pc, CONNECT_MS);
        enlargeBuffers(pc);
        ports[i] = await localPort(pc);
      }
    } else if (args.mode === 'naive') {
      const pc = new RTCPeerConnection(config());
      closers.push(() => pc.close());
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.onTrack.subscribe((track) =>
        track.onReceiveRtp.subscribe((rtp) => counter.onPayload(rtp.payload)),
      );
      await pc.setLocalDescription(await pc.createOffer());
      const answer = await post(`${args.url}/subscribe`, localSdp(pc));
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await waitForConnected(pc, CONNECT_MS);
      enlargeBuffers(pc);
    } else if (args.mode === 'janus') {
      await janusViewer(args.url as string, args.mountpoint as number, args.hostAddress);
    } else {
      const socket: Socket = createSocket('udp4');
      closers.push(() => socket.close());
      const key = keyFor(`sub-${args.offset + i}`);
      socket.on('message', (packet) => {
        const body = open(key, packet);
        if (body) counter.onPayload(body);
      });
      await new Promise<void>((resolve) => socket.bind(0, HOST[0], resolve));
      socket.setRecvBufferSize(BENCH_UDP_BUFFER);
      ports[i] = socket.address().port;
    }
  };
  await Promise.all(Array.from({ length: args.count }, (_, i) => one(i)));
  return { ports };
}

/**
 * One viewer of Janus's streaming plugin: a session with a streaming handle, `watch` (Janus
 * answers with an event carrying its offer), our answer with `start`. Janus offers, so ICE
 * and DTLS roles are the other way round from the naive mode's; the PeerConnection is the same.
 */
async function janusViewer(
  url: string,
  mountpoint: number,
  hostAddress: string | undefined,
): Promise<void> {
  const session = await JanusSession.create(url);
  // Destroying the session hangs the handle up: Janus drops the viewer at once.
  closers.push(() => session.destroy());
  const handle = await session.attach(JANUS_STREAMING);
  const pc = new RTCPeerConnection(config(hostAddress ? [hostAddress] : HOST));
  closers.push(() => pc.close());
  pc.onTrack.subscribe((track) =>
    track.onReceiveRtp.subscribe((rtp) => counter.onPayload(rtp.payload)),
  );
  await session.message(handle, { request: 'watch', id: mountpoint });
  const offer = (await session.nextEvent((m) => m.jsep?.type === 'offer', CONNECT_MS)).jsep;
  if (!offer) throw new Error(`janus session ${session.id}: an event without its offer`);
  await pc.setRemoteDescription(offer);
  await pc.setLocalDescription(await pc.createAnswer());
  await session.message(handle, { request: 'start' }, { type: 'answer', sdp: localSdp(pc) });
  await waitForConnected(pc, CONNECT_MS);
  enlargeBuffers(pc);
}

/** The local UDP port of `pc`'s nominated candidate pair (what the node sends media to). */
async function localPort(pc: RTCPeerConnection): Promise<number> {
  const entries = [...(await pc.getStats()).values()] as unknown as Record<string, unknown>[];
  const pair = entries.find((e) => e.type === 'candidate-pair' && e.nominated === true);
  const local = entries.find((e) => e.id === pair?.localCandidateId);
  const port = local?.port;
  if (typeof port !== 'number') throw new Error('no nominated candidate pair');
  return port;
}

/** Sends `rate` packets/s for `durationMs`, paced on a 1 ms timer; resolves with the count. */
function run(args: { step: number; rate: number; durationMs: number }): Promise<{ sent: number }> {
  const send = sendPacket;
  if (!send) throw new Error('not a publisher');
  const start = nowMs();
  const total = Math.round((args.rate * args.durationMs) / 1000);
  let sent = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const elapsed = nowMs() - start;
      const due = Math.min(total, Math.floor((args.rate * elapsed) / 1000));
      while (sent < due) {
        send(args.step, sent, sent === 0);
        sent++;
      }
      if (sent >= total) resolve({ sent });
      else setTimeout(tick, 1);
    };
    tick();
  });
}

serve({
  publisher,
  subscribers,
  run,
  begin: (args: { step: number }) => counter.begin(args.step),
  end: () => ({ count: counter.count, other: counter.other, hist: Array.from(counter.hist) }),
  close: async () => {
    await Promise.allSettled(closers.map((c) => c()));
    setTimeout(() => process.exit(0), 50);
  },
});
