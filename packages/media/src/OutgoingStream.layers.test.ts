/**
 * Layer switching in OutgoingStream: synthetic simulcast layers (each its own SSRC, sequence
 * numbers, timestamps and VP8 picture numbering) go through a real werift sender to a real
 * receiver on loopback, and what the receiver gets must be one continuous stream.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@geosfu/common';
import { RTCPeerConnection, RtpHeader, RtpPacket } from 'werift';
import { audioCodecs, videoCodecs } from './codecs.js';
import type { ForwardedPacket } from './ForwardedPacket.js';
import { OutgoingStream, type OutgoingStreamObserver } from './OutgoingStream.js';
import { iceOptions } from './peerConfig.js';
import { seqDiff } from './RtpMunger.js';
import { parseVp8 } from './vp8.js';

const LOOPBACK = { rtcPortRange: undefined, rtcHostAddresses: ['127.0.0.1'], announcedIps: [] };
const codecs = { video: videoCodecs(), audio: audioCodecs() };

const opened: RTCPeerConnection[] = [];
after(async () => {
  await Promise.allSettled(opened.map((pc) => pc.close()));
});

async function waitUntil(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

interface Received {
  seq: number;
  ts: number;
  pictureId: number;
  tl0: number;
  keyframe: boolean;
  /** The layer the synthetic packet came from (last payload byte) and its number in it. */
  layer: number;
  index: number;
}

/** A sending and a receiving PeerConnection on loopback, DTLS up, and what arrives. */
async function connectedStream(
  kind: 'video' | 'audio',
  observer: Partial<OutgoingStreamObserver> = {},
): Promise<{ stream: OutgoingStream; received: Received[] }> {
  const sending = new RTCPeerConnection({
    ...iceOptions(LOOPBACK),
    iceLite: false,
    bundlePolicy: 'max-bundle',
    codecs,
  });
  const receiving = new RTCPeerConnection({
    ...iceOptions(LOOPBACK),
    bundlePolicy: 'max-bundle',
    codecs,
  });
  opened.push(sending, receiving);
  const transceiver = sending.addTransceiver(kind, { direction: 'sendonly' });
  const stream = new OutgoingStream({
    sender: transceiver.sender,
    observer: { sent: () => {}, keyframeRequested: () => {}, ...observer },
    clockRate: kind === 'video' ? 90_000 : 48_000,
    logger: silentLogger(),
  });
  const received: Received[] = [];
  receiving.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      const d = parseVp8(rtp.payload);
      const n = rtp.payload.length;
      received.push({
        seq: rtp.header.sequenceNumber,
        ts: rtp.header.timestamp,
        pictureId: d?.pictureId ?? -1,
        tl0: d?.tl0PicIdx ?? -1,
        keyframe: d?.keyframe ?? false,
        layer: rtp.payload[n - 1] ?? -1,
        index: rtp.payload.readUInt16BE(n - 3),
      });
    });
  });
  await sending.setLocalDescription(await sending.createOffer());
  await receiving.setRemoteDescription({ type: 'offer', sdp: sending.localDescription?.sdp ?? '' });
  await receiving.setLocalDescription(await receiving.createAnswer());
  await sending.setRemoteDescription({
    type: 'answer',
    sdp: receiving.localDescription?.sdp ?? '',
  });
  await waitUntil('DTLS connected', () => transceiver.sender.dtlsTransport.state === 'connected');
  return { stream, received };
}

/**
 * One synthetic VP8 simulcast layer: two packets a frame, 30 fps at 90 kHz, a keyframe every
 * `keyEvery` frames (from `keyPhase`), 15-bit PictureID and TL0PICIDX counting per frame.
 */
class SyntheticLayer {
  seq: number;
  ts: number;
  picture: number;
  tl0: number;
  frame = 0;
  sent = 0;
  constructor(
    readonly layer: number,
    readonly ssrc: number,
    origin: { seq: number; ts: number; picture: number; tl0: number },
    readonly keyEvery: number,
    readonly keyPhase: number,
  ) {
    this.seq = origin.seq;
    this.ts = origin.ts;
    this.picture = origin.picture;
    this.tl0 = origin.tl0;
  }

  /** The next frame's packets; `keyframe` forces (or prevents) a keyframe. */
  nextFrame(keyframe?: boolean): ForwardedPacket[] {
    const key = keyframe ?? (this.frame + this.keyPhase) % this.keyEvery === 0;
    const out: ForwardedPacket[] = [];
    for (let part = 0; part < 2; part++) {
      const payload = Buffer.alloc(40);
      payload[0] = 0x80 | (part === 0 ? 0x10 : 0); // X, S on the first packet
      payload[1] = 0xe0; // I, L, T
      payload[2] = 0x80 | ((this.picture >> 8) & 0x7f);
      payload[3] = this.picture & 0xff;
      payload[4] = this.tl0 & 0xff;
      payload[5] = 0; // TID 0
      payload[6] = key ? 0x10 : 0x11; // the P bit: clear on a keyframe
      payload.writeUInt16BE(this.sent & 0xffff, payload.length - 3);
      payload[payload.length - 1] = this.layer;
      const header = new RtpHeader({
        payloadType: 96,
        sequenceNumber: this.seq,
        timestamp: this.ts,
        ssrc: this.ssrc,
        marker: part === 1,
      });
      const vp8 = parseVp8(payload);
      out.push({
        buffer: new RtpPacket(header, payload).serialize(),
        layer: this.layer,
        ssrc: this.ssrc,
        sequenceNumber: this.seq,
        timestamp: this.ts,
        marker: part === 1,
        keyframe: vp8?.keyframe ?? false,
        vp8,
      });
      this.seq = (this.seq + 1) & 0xffff;
      this.sent++;
    }
    this.frame++;
    this.ts = (this.ts + 3000) >>> 0;
    this.picture = (this.picture + 1) & 0x7fff;
    this.tl0 = (this.tl0 + 1) & 0xff;
    return out;
  }
}

function threeLayers(): SyntheticLayer[] {
  return [
    new SyntheticLayer(
      0,
      1111,
      { seq: 65_500, ts: 4_294_960_000, picture: 32_700, tl0: 250 },
      6,
      0,
    ),
    new SyntheticLayer(1, 2222, { seq: 100, ts: 50, picture: 5, tl0: 17 }, 5, 2),
    new SyntheticLayer(2, 3333, { seq: 30_000, ts: 7, picture: 1_000, tl0: 0 }, 7, 4),
  ];
}

/** Checks the received stream is continuous; returns the number of gaps of each size. */
function assertContinuous(received: readonly Received[], allowedGaps = 0): void {
  let gaps = 0;
  for (let i = 1; i < received.length; i++) {
    const a = received[i - 1];
    const b = received[i];
    assert.ok(a && b);
    const step = seqDiff(b.seq, a.seq);
    assert.ok(step >= 1, `packet ${i}: sequence number ${a.seq} -> ${b.seq} (dupe or step back)`);
    if (step > 1) gaps += step - 1;
    const tsStep = (b.ts - a.ts) >>> 0;
    assert.ok(tsStep < 90_000, `packet ${i}: timestamp ${a.ts} -> ${b.ts} went back`);
    const picStep = (b.pictureId - a.pictureId) & 0x7fff;
    assert.ok(picStep <= 1 + (step - 1), `packet ${i}: PictureID ${a.pictureId} -> ${b.pictureId}`);
    const tl0Step = (b.tl0 - a.tl0) & 0xff;
    assert.ok(tl0Step <= 1 + (step - 1), `packet ${i}: TL0PICIDX ${a.tl0} -> ${b.tl0}`);
    if (a.layer !== b.layer)
      assert.ok(b.keyframe, `packet ${i}: a switch to ${b.layer} at a keyframe`);
  }
  assert.equal(gaps, allowedGaps, 'gaps in the sequence');
}

test('24 switches up and down: one continuous stream, each at a keyframe of the target', async () => {
  const switches: [number, number][] = [];
  const asked: number[] = [];
  const { stream, received } = await connectedStream('video', {
    layerSwitched: (from, to) => switches.push([from, to]),
    keyframeRequested: (layer) => asked.push(layer),
  });
  const layers = threeLayers();
  const plan = [2, 0, 1, 2, 1, 0, 2, 0, 1, 2, 1, 0, 2, 0, 1, 2, 1, 0, 2, 0, 1, 2, 1, 0];
  let sentOfCurrent = 0;
  // Start on layer 0 (the initial target).
  for (const target of [0, ...plan]) {
    stream.setTargetLayer(target);
    const before = switches.length;
    // Every layer keeps sending, interleaved, until the stream switched and sent a few frames.
    for (let round = 0; round < 40; round++) {
      for (const l of layers) for (const p of l.nextFrame()) stream.send(p);
      if (switches.length > before && ++sentOfCurrent % 3 === 0) break;
    }
    assert.equal(stream.currentLayer, target, `switched to ${target}`);
    await sleep(5); // let the loopback drain (no assertion depends on time)
  }
  await waitUntil('all sent packets received', () => received.length === stream.packets);
  assert.equal(switches.length, plan.length + 1);
  assert.deepEqual(
    switches.map(([, to]) => to),
    [0, ...plan],
  );
  assert.deepEqual(asked, plan, 'a keyframe of each target asked for when set');
  assertContinuous(received);
  assert.deepEqual(
    [...new Set(received.map((r) => r.layer))].sort(),
    [0, 1, 2],
    'every layer reached the receiver',
  );
});

test('loss inside a layer stays a gap; duplicates, late old-layer packets and packets older than the switch are dropped', async () => {
  const { stream, received } = await connectedStream('video');
  const [low, high] = threeLayers();
  assert.ok(low && high);
  for (const p of low.nextFrame(true)) stream.send(p);
  const lowFrame = low.nextFrame(false);
  const [firstOfFrame, secondOfFrame] = lowFrame;
  assert.ok(firstOfFrame && secondOfFrame);
  stream.send(secondOfFrame); // firstOfFrame is "lost"
  stream.send(secondOfFrame); // a duplicate
  for (const p of low.nextFrame(false)) stream.send(p);
  // Switch up: high's delta frames are not a switching point; its keyframe is.
  stream.setTargetLayer(1);
  const highOld = high.nextFrame(false);
  for (const p of highOld) stream.send(p);
  for (const p of low.nextFrame(false)) stream.send(p); // low goes on until the switch
  for (const p of high.nextFrame(true)) stream.send(p);
  assert.equal(stream.currentLayer, 1);
  stream.send(firstOfFrame); // the lost low packet arrives late: the old layer is gone
  for (const p of low.nextFrame(true)) stream.send(p);
  for (const p of highOld) stream.send(p); // older than the switching point
  const next = high.nextFrame(false);
  for (const p of next) stream.send(p);
  for (const p of next) stream.send(p); // duplicates of the new layer
  await waitUntil('all sent packets received', () => received.length === stream.packets);
  assert.deepEqual(
    received.map((r) => `${r.layer}:${r.index}`),
    ['0:0', '0:1', '0:3', '0:4', '0:5', '0:6', '0:7', '1:2', '1:3', '1:4', '1:5'],
  );
  assertContinuous(received, 1);
});

test('paused (-1) sends nothing at once; resumed, it starts at a keyframe and continues the numbers', async () => {
  const switches: [number, number][] = [];
  const { stream, received } = await connectedStream('video', {
    layerSwitched: (from, to) => switches.push([from, to]),
  });
  const [low] = threeLayers();
  assert.ok(low);
  for (let f = 0; f < 4; f++) for (const p of low.nextFrame(f === 0)) stream.send(p);
  stream.setTargetLayer(-1);
  assert.equal(stream.currentLayer, -1);
  for (let f = 0; f < 10; f++) for (const p of low.nextFrame(false)) stream.send(p);
  stream.setTargetLayer(0);
  for (let f = 0; f < 3; f++) for (const p of low.nextFrame(false)) stream.send(p);
  for (let f = 0; f < 3; f++) for (const p of low.nextFrame(f === 0)) stream.send(p);
  await waitUntil('all sent packets received', () => received.length === stream.packets);
  assert.equal(received.length, 8 + 6);
  assert.equal(received[8]?.keyframe, true, 'the first packet after the pause starts a keyframe');
  assert.deepEqual(switches, [
    [-1, 0],
    [0, -1],
    [-1, 0],
  ]);
  assertContinuous(received);
});

test('a switch waiting for a keyframe asks again after KEYFRAME_RETRY_MS', async () => {
  const asked: number[] = [];
  const { stream } = await connectedStream('video', {
    keyframeRequested: (layer) => asked.push(layer),
  });
  const [low, high] = threeLayers();
  assert.ok(low && high);
  for (const p of low.nextFrame(true)) stream.send(p);
  stream.setTargetLayer(1);
  assert.deepEqual(asked, [1]);
  // The layers go on without a keyframe of layer 1; the stream keeps sending layer 0.
  await waitUntil('asked again', () => {
    for (const p of low.nextFrame(false)) stream.send(p);
    for (const p of high.nextFrame(false)) stream.send(p);
    return asked.length >= 2;
  });
  assert.deepEqual(asked.slice(0, 2), [1, 1]);
  assert.equal(stream.currentLayer, 0);
});

test('audio starts at its first packet and goes through unchanged', async () => {
  const { stream, received } = await connectedStream('audio');
  for (let i = 0; i < 20; i++) {
    const header = new RtpHeader({
      payloadType: 111,
      sequenceNumber: 500 + i,
      timestamp: 960 * i,
      ssrc: 9,
    });
    const payload = Buffer.alloc(20, i);
    stream.send({
      buffer: new RtpPacket(header, payload).serialize(),
      layer: 0,
      ssrc: 9,
      sequenceNumber: 500 + i,
      timestamp: 960 * i,
      marker: false,
      keyframe: false,
      vp8: undefined,
    });
  }
  await waitUntil('20 packets', () => received.length === 20);
  assert.equal(stream.currentLayer, 0);
  for (let i = 1; i < 20; i++) {
    assert.equal(seqDiff(received[i]?.seq ?? 0, received[i - 1]?.seq ?? 0), 1);
    assert.equal(((received[i]?.ts ?? 0) - (received[i - 1]?.ts ?? 0)) >>> 0, 960);
  }
});

test('H264 (no VP8 descriptor): switches at the keyframe flag (IDR), sequence numbers and timestamps continue', async () => {
  const switches: number[] = [];
  const { stream, received } = await connectedStream('video', {
    layerSwitched: (_from, to) => switches.push(to),
  });
  // Two layers of single-NAL packets, one packet a frame; the publication flags IDRs.
  const layers = [
    { ssrc: 10, seq: 40_000, ts: 1_000 },
    { ssrc: 20, seq: 9, ts: 3_000_000_000 },
  ];
  const packetOf = (layer: number, keyframe: boolean): ForwardedPacket => {
    const l = layers[layer];
    assert.ok(l);
    const payload = Buffer.from([keyframe ? 0x65 : 0x41, 0, 0, 0, layer]);
    const header = new RtpHeader({
      payloadType: 102,
      sequenceNumber: l.seq,
      timestamp: l.ts,
      ssrc: l.ssrc,
      marker: true,
    });
    const packet: ForwardedPacket = {
      buffer: new RtpPacket(header, payload).serialize(),
      layer,
      ssrc: l.ssrc,
      sequenceNumber: l.seq,
      timestamp: l.ts,
      marker: true,
      keyframe,
      vp8: undefined,
    };
    l.seq = (l.seq + 1) & 0xffff;
    l.ts = (l.ts + 3000) >>> 0;
    return packet;
  };
  for (let s = 0; s < 21; s++) {
    const target = s % 2;
    stream.setTargetLayer(target);
    for (let f = 0; f < 6; f++) {
      // An IDR on each layer every third frame.
      for (const layer of [0, 1]) stream.send(packetOf(layer, f % 3 === 2));
    }
    assert.equal(stream.currentLayer, target);
  }
  await waitUntil('all sent packets received', () => received.length === stream.packets);
  assert.equal(switches.length, 21);
  for (let i = 1; i < received.length; i++) {
    const a = received[i - 1];
    const b = received[i];
    assert.ok(a && b);
    assert.equal(seqDiff(b.seq, a.seq), 1, `packet ${i}: ${a.seq} -> ${b.seq}`);
    assert.ok((b.ts - a.ts) >>> 0 < 90_000, `packet ${i}: timestamp ${a.ts} -> ${b.ts}`);
  }
});
