import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type SimulcastLayer, silentLogger } from '@geosfu/common';
import { type ForwardedPacket, SRTP_TAG_BYTES, UDP_IP_BYTES } from '@geosfu/media';
import { RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { NodeMetrics } from './metrics.js';
import { KEYFRAME_REQUEST_GAP_MS, type PacketSink, Publication } from './Publication.js';
import { LAYER_TICK_MS } from './PublicationLayer.js';

const metrics = new NodeMetrics(
  { nodeId: 'n1', region: 'r1', version: 'test' },
  {
    rooms: () => 0,
    participants: () => 0,
    handshakes: () => ({ active: 0, waiting: 0 }),
    publishedTracks: () => 0,
    subscriptions: () => 0,
    relayLinks: () => [],
  },
);
const vp8 = new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000 });
const LAYERS: SimulcastLayer[] = [
  { rid: 'q', width: 320, height: 180, maxBitrate: 150_000 },
  { rid: 'h', width: 640, height: 360, maxBitrate: 500_000 },
  { rid: 'f', width: 1280, height: 720, maxBitrate: 1_500_000 },
];

const opened: Publication[] = [];
after(() => {
  for (const p of opened) p.close();
});

function publication(layers?: SimulcastLayer[], pauseDelayMs = 100) {
  const plis: number[] = [];
  const p = new Publication({
    kind: 'video',
    source: 'camera',
    participantSid: 'PA_1',
    identity: 'alice',
    codec: vp8,
    origin: { path: 'client', requestKeyframe: (layer) => plis.push(layer) },
    metrics,
    logger: silentLogger(),
    ...(layers ? { layers } : {}),
    dynacastPauseDelayMs: pauseDelayMs,
  });
  opened.push(p);
  return { p, plis };
}

/** A VP8 packet with a 15-bit PictureID and TL0PICIDX; `keyframe` clears the P bit. */
function packet(ssrc: number, seq: number, pictureId: number, keyframe: boolean): RtpPacket {
  const payload = Buffer.from([
    0x90, // X, S
    0xc0, // I, L
    0x80 | (pictureId >> 8),
    pictureId & 0xff,
    7, // TL0PICIDX
    keyframe ? 0x00 : 0x01,
    ...new Array(100).fill(0),
  ]);
  const header = new RtpHeader({
    payloadType: 96,
    sequenceNumber: seq,
    timestamp: seq * 3000,
    ssrc,
  });
  return new RtpPacket(header, payload);
}

class Sink implements PacketSink {
  packets: ForwardedPacket[] = [];
  closed = false;
  send(packet: ForwardedPacket): void {
    this.packets.push(packet);
  }
  close(): void {
    this.closed = true;
  }
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

async function layerPackets(layer: number): Promise<number> {
  const metric = await metrics.simulcastLayerPackets.get();
  return metric.values.find((v) => v.labels.layer === String(layer))?.value ?? 0;
}

test('a single-layer publication has one layer (rid ""); each sink gets one ForwardedPacket', async () => {
  const { p } = publication();
  assert.equal(p.simulcast, false);
  assert.deepEqual(
    p.layers.map((l) => [l.rid, l.width, l.maxBitrate, l.active, l.paused]),
    [['', 0, 0, false, false]],
  );
  assert.equal(p.info().layers, undefined);
  const a = new Sink();
  const b = new Sink();
  p.addSubscription(a);
  p.addSubscription(b);
  const before = await layerPackets(0);
  let layersEvents = 0;
  p.on('layers', () => layersEvents++);
  p.forward(packet(11, 1, 300, true));
  p.forward(packet(11, 2, 301, false));
  assert.equal(layersEvents, 1, 'active on the first packet');
  assert.equal(p.layers[0]?.active, true);
  assert.equal(a.packets.length, 2);
  assert.equal(a.packets[0], b.packets[0], 'one object for every sink');
  const [first, second] = a.packets;
  assert.ok(first && second);
  assert.equal(first.layer, 0);
  assert.equal(first.ssrc, 11);
  assert.equal(first.sequenceNumber, 1);
  assert.equal(first.timestamp, 3000);
  assert.equal(first.keyframe, true);
  assert.equal(second.keyframe, false);
  assert.equal(first.vp8?.pictureId, 300);
  assert.equal(first.vp8?.tl0PicIdx, 7);
  assert.equal(first.buffer.length, 12 + 106, 'a bare 12-byte header, then the payload');
  assert.equal(p.keyframesIn, 1);
  assert.equal(await layerPackets(0), before, 'not simulcast: no per-layer count');
  await waitUntil('inactive once media stops', () => p.layers[0]?.active === false);
  assert.equal(layersEvents, 2);
});

test('simulcast: each layer is counted, measured and reported on its own', async () => {
  const { p } = publication(LAYERS);
  assert.equal(p.simulcast, true);
  assert.deepEqual(
    p.layers.map((l) => [l.rid, l.width, l.height, l.maxBitrate]),
    LAYERS.map((l) => [l.rid, l.width, l.height, l.maxBitrate]),
  );
  assert.deepEqual(p.info().layers, LAYERS);
  const sink = new Sink();
  p.addSubscription(sink);
  const before = await Promise.all([0, 1, 2].map(layerPackets));
  let seq = 0;
  for (let i = 0; i < 10; i++) {
    for (const layer of [0, 1, 2]) {
      for (let k = 0; k <= layer; k++)
        p.forward(packet(100 + layer, ++seq, i, i === 0 && k === 0), layer);
    }
  }
  assert.deepEqual(
    p.layerCounts().map((c) => [c.rid, c.packets, c.keyframes]),
    [
      ['q', 10, 1],
      ['h', 20, 1],
      ['f', 30, 1],
    ],
  );
  const after = await Promise.all([0, 1, 2].map(layerPackets));
  assert.deepEqual(
    after.map((v, i) => v - (before[i] ?? 0)),
    [10, 20, 30],
  );
  assert.deepEqual(
    [0, 1, 2].map((layer) => sink.packets.filter((x) => x.layer === layer).length),
    [10, 20, 30],
  );
  assert.ok(p.layers.every((l) => l.active));
  await waitUntil('a bitrate measured', () => (p.layers[2]?.bitrateBps ?? 0) > 0);
  const rates = p.layers.map((l) => l.bitrateBps);
  assert.ok((rates[0] ?? 0) < (rates[1] ?? 0) && (rates[1] ?? 0) < (rates[2] ?? 0), `${rates}`);
  p.forward(packet(1, 1, 0, false), 3); // no such layer: ignored
  assert.equal(p.packetsIn, 60);
  // Payload bytes of every layer (the `stats` reply's simulcast inbound stream): 106 each.
  assert.equal(p.bytesIn, 60 * 106);
});

test('a layer bitrate counts packets as the wire carries them, as the subscriber estimate does', async () => {
  const { p } = publication(LAYERS);
  p.addSubscription(new Sink());
  // 20 packets of 106 payload bytes, 12-byte header, within the first tick (500 ms).
  for (let i = 0; i < 20; i++) p.forward(packet(100, i + 1, i, i === 0), 0);
  await waitUntil('a bitrate measured', () => (p.layers[0]?.bitrateBps ?? 0) > 0);
  const wire = 106 + 12 + SRTP_TAG_BYTES + UDP_IP_BYTES;
  const tickSeconds = LAYER_TICK_MS / 1000;
  assert.equal(p.layers[0]?.bitrateBps, Math.round((20 * wire * 8) / tickSeconds));
});

test('padding-only packets (Chrome probing on a layer it sends no frames on) do not make the layer active', async () => {
  const { p } = publication(LAYERS);
  const sink = new Sink();
  p.addSubscription(sink);
  const padding = (seq: number) =>
    new RtpPacket(
      new RtpHeader({ payloadType: 96, sequenceNumber: seq, ssrc: 102 }),
      Buffer.alloc(0),
    );
  for (let i = 1; i <= 20; i++) p.forward(padding(i), 2);
  assert.equal(p.layers[2]?.active, false);
  await sleep(LAYER_TICK_MS + 100);
  assert.equal(p.layers[2]?.active, false);
  assert.equal(p.layers[2]?.bitrateBps, 0);
  assert.equal(sink.packets.length, 20, 'still forwarded: the sequence numbers stay continuous');
  p.forward(packet(102, 21, 0, true), 2);
  assert.equal(p.layers[2]?.active, true);
});

test('padding-only packets keep no layer active and add nothing to its count or bitrate', async () => {
  const { p } = publication(LAYERS);
  const sink = new Sink();
  p.addSubscription(sink);
  let layersEvents = 0;
  p.on('layers', () => layersEvents++);
  // Chrome pads on f's SSRC while its estimate does not cover f: packets with an empty payload.
  const padding = (seq: number) =>
    new RtpPacket(
      new RtpHeader({ payloadType: 96, sequenceNumber: seq, ssrc: 102 }),
      Buffer.alloc(0),
    );
  const end = Date.now() + 1_500;
  let seq = 0;
  while (Date.now() < end) {
    p.forward(padding(++seq), 2);
    assert.equal(p.layers[2]?.active, false, `padding made f active after ${seq} packets`);
    await sleep(20);
  }
  assert.equal(layersEvents, 0);
  assert.equal(p.layers[2]?.bitrateBps, 0);
  assert.equal(p.layerCounts()[2]?.packets, 0);
  assert.equal(sink.packets.length, seq, 'still forwarded: the sequence stays continuous');
  // Media on the same layer makes it active at once.
  p.forward(packet(102, ++seq, 1, true), 2);
  assert.equal(p.layers[2]?.active, true);
  assert.equal(layersEvents, 1);
});

test('keyframe requests go to one layer, merged per layer within the gap', async () => {
  const { p, plis } = publication(LAYERS);
  p.addSubscription(new Sink()); // a sink that never declares a demand: no layer pauses
  p.requestKeyframe(1);
  p.requestKeyframe(1);
  p.requestKeyframe(2);
  assert.deepEqual(plis, [1, 2], 'layer 1 once now, layer 2 on its own');
  await waitUntil('the trailing request for layer 1', () => plis.length === 3);
  assert.deepEqual(plis, [1, 2, 1]);
  await sleep(KEYFRAME_REQUEST_GAP_MS + 50);
  plis.length = 0;
  p.requestKeyframe();
  assert.deepEqual(plis, [0, 1, 2], 'undefined: every layer');
  p.requestKeyframe(7);
  const { p: single, plis: singlePlis } = publication();
  single.requestKeyframe();
  assert.deepEqual(singlePlis, [0]);
});

test('a keyframe that arrives answers the request waiting out the gap: it is not sent', async () => {
  const { p, plis } = publication(LAYERS);
  p.addSubscription(new Sink());
  p.requestKeyframe(1);
  p.requestKeyframe(1); // waits out the gap
  p.requestKeyframe(2);
  p.requestKeyframe(2); // waits out the gap too
  assert.deepEqual(plis, [1, 2]);
  p.forward(packet(11, 1, 1, true), 1); // a keyframe of layer 1 (Chrome: of every layer)
  p.forward(packet(12, 1, 1, false), 2); // layer 2: no keyframe yet
  await sleep(KEYFRAME_REQUEST_GAP_MS + 100);
  assert.deepEqual(plis, [1, 2, 2], 'layer 2 still asked again, layer 1 not');
});

test('dynacast: the union of sinks decides, silent sinks keep everything, a removed sink drops its demand', async () => {
  const { p, plis } = publication(LAYERS, 100);
  const a = new Sink();
  const b = new Sink();
  p.addSubscription(a);
  p.addSubscription(b);
  const sent: string[][] = [];
  p.on('dynacast', (active) => sent.push(active));
  p.setDemand(a, 0);
  await sleep(300);
  assert.deepEqual(sent, [], 'b never declared: every layer stays');
  const gauge = async () => (await metrics.simulcastPausedLayers.get()).values[0]?.value ?? 0;
  const pausedBefore = await gauge();
  p.setDemand(b, 1);
  await waitUntil('f paused', () => sent.length === 1);
  assert.deepEqual(sent, [['q', 'h']]);
  assert.deepEqual(
    p.layers.map((l) => l.paused),
    [false, false, true],
  );
  assert.equal(await gauge(), pausedBefore + 1);
  plis.length = 0;
  await sleep(KEYFRAME_REQUEST_GAP_MS);
  p.requestKeyframe();
  assert.deepEqual(plis, [0, 1], 'no keyframe asked of a paused layer');
  p.setDemand(a, 2);
  assert.deepEqual(sent.at(-1), ['q', 'h', 'f'], 'resumed at once');
  p.removeSubscription(a);
  p.setDemand(b, -1);
  await waitUntil('only the lowest left', () => sent.length === 3);
  assert.deepEqual(sent.at(-1), ['q']);
  assert.equal(await gauge(), pausedBefore + 2);
  p.setDemand(a, 2); // a is gone: ignored
  assert.deepEqual(sent.at(-1), ['q']);
  p.close();
  assert.equal(await gauge(), pausedBefore, 'closing releases its paused layers');
  assert.equal(b.closed, true);
});
