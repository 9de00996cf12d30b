/**
 * The fan-out benchmark's baseline forwarders, one per child process (forked by
 * bench/fanout.bench.ts; not a benchmark itself):
 *
 *   naive    a minimal werift SFU: one HTTP endpoint for the publisher's offer, one for each
 *            subscriber's; each subscriber transceiver does `sender.replaceTrack(remoteTrack)`
 *            and nothing else (no extension stripping, no PLI handling, no stats).
 *   ceiling  dgram forwarding with an SRTP-like AES-128-GCM per packet from node:crypto:
 *            decrypt once per ingress packet, encrypt once per egress packet (one KeyObject
 *            per key; a cipher object per packet is what the API allows for GCM).
 *
 * Both answer `elp99` (event-loop delay p99 since the last call, as prom-client reports it).
 */
import { createSocket } from 'node:dgram';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type MediaStreamTrack, RTCPeerConnection } from 'werift';
import { peerConfig, publisherVideoCodecs } from '../packages/client/src/bot/peer.js';
import { BENCH_UDP_BUFFER, enlargeBuffers, keyFor, open, seal, serve } from './fanout-common.js';

const mode = process.argv[2];
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const elp99 = () => {
  const v = loop.percentile(99) / 1e6;
  loop.reset();
  return v;
};

const config = () =>
  peerConfig({ hostAddresses: ['127.0.0.1'] }, { video: publisherVideoCodecs('vp8'), audio: [] });

const body = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
};

if (mode === 'naive') {
  let remote: MediaStreamTrack | undefined;
  const server = createServer(async (req, res) => {
    try {
      const offer = await body(req);
      const pc = new RTCPeerConnection(config());
      if (req.url === '/publish') {
        pc.onTrack.subscribe((track) => {
          remote = track;
        });
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
      } else {
        if (!remote) throw new Error('nothing published yet');
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        const transceiver = pc.getTransceivers()[0];
        if (!transceiver) throw new Error('no transceiver');
        transceiver.setDirection('sendonly');
        await transceiver.sender.replaceTrack(remote);
      }
      await pc.setLocalDescription(await pc.createAnswer());
      enlargeBuffers(pc);
      res.end(pc.localDescription?.sdp ?? '');
    } catch (error) {
      res.statusCode = 500;
      res.end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  serve({
    info: () => ({ url: `http://127.0.0.1:${port}` }),
    elp99,
  });
} else if (mode === 'ceiling') {
  const socket = createSocket('udp4');
  const ingressKey = keyFor('publisher');
  let receivers: { port: number; key: ReturnType<typeof keyFor> }[] = [];
  socket.on('message', (packet) => {
    const payload = open(ingressKey, packet);
    if (!payload) return;
    for (let i = 0; i < receivers.length; i++) {
      const r = receivers[i] as (typeof receivers)[number];
      const header = Buffer.allocUnsafe(12);
      packet.copy(header, 0, 0, 12);
      header.writeUInt32BE(i + 1, 8);
      socket.send(seal(r.key, header, payload), r.port, '127.0.0.1');
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.setRecvBufferSize(BENCH_UDP_BUFFER);
  serve({
    info: () => ({ port: socket.address().port }),
    elp99,
    setReceivers: (args: { ports: number[] }) => {
      receivers = args.ports.map((port, i) => ({ port, key: keyFor(`sub-${i}`) }));
      return receivers.length;
    },
  });
} else {
  throw new Error(`usage: fanout-forwarder.ts naive|ceiling, got ${mode}`);
}
