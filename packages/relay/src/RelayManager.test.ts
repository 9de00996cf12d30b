/**
 * Two relay managers in one process, on the in-process bus and registry, with real werift
 * PeerConnections on loopback: how the receiving side ends a link whose sender died or went
 * silent, and how the sender rebuilds it (test/robustness/relay-source-death.test.ts does the
 * same with real node processes on a real Redis); and how a simulcast track's layers travel
 * only while the far node asks for them (test/integration/relay-layers.test.ts: with nodes).
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@geosfu/common';
import { MemoryNodeRegistry, MemoryNodeStore, type NodeRecordInput } from '@geosfu/registry';
import { type RTCPeerConnectionConfig, RtpHeader, RtpPacket, useOPUS, useVP8 } from 'werift';
// The registry's unit-test fixture (not part of the package's API, so by path).
import { nodeRecordFixture } from '../../registry/src/NodeRecord.fixtures.js';
import { MemoryRelayBus, MemoryRelayHub } from './MemoryRelayBus.js';
import type { LayersBody } from './messages.js';
import { RelayManager } from './RelayManager.js';
import { LAYERS_REFRESH_MS, type RelayedTrack } from './RelayReceiver.js';
import type { RelaySink, RelaySource } from './types.js';

const PEER_TIMEOUT_MS = 2_000;
const ROOM = 'r1';
const logger = silentLogger();

const ice: RTCPeerConnectionConfig = {
  iceStunGatherTimeout: 0,
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
  bundlePolicy: 'max-bundle',
  codecs: { audio: [useOPUS()], video: [useVP8()] },
};

function record(id: string): NodeRecordInput {
  return nodeRecordFixture(id, {
    url: `http://${id}.test`,
    signalUrl: `ws://${id}.test/v1/signal`,
    capacity: 10,
    version: '0.0.0',
    startedAt: Date.now(),
  });
}

/** A published track that sends nothing: only the link's own RTCP can show it is alive. */
const silentSource: RelaySource = {
  track: {
    trackId: 'TR_a',
    participantSid: 'S_a',
    identity: 'alice',
    kind: 'audio',
    source: 'microphone',
    codec: { mimeType: 'audio/opus', clockRate: 48_000, channels: 2 },
  },
  attach: () => () => undefined,
  requestKeyframe: () => undefined,
  setDemand: () => undefined,
};

const closing: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

/**
 * Node a sends `sources` to node b, which has nothing to send. `lose`: a `layers` message
 * that node a drops on arrival when it returns true (as if Redis lost it).
 */
async function cluster(
  sources: RelaySource[] = [silentSource],
  lose: (body: LayersBody) => boolean = () => false,
) {
  const hub = new MemoryRelayHub();
  const store = new MemoryNodeStore();
  const made = await Promise.all(
    ['node-a', 'node-b'].map(async (nodeId) => {
      const bus = new MemoryRelayBus({ hub, nodeId });
      const registry = new MemoryNodeRegistry({ store });
      closing.push(
        () => bus.close(),
        () => registry.close(),
      );
      await bus.start();
      await registry.register(record(nodeId));
      return { bus, registry };
    }),
  );
  const [a, b] = made as [(typeof made)[0], (typeof made)[0]];
  const manager = (nodeId: string, m: typeof a, sends: boolean) => {
    const relays = new RelayManager({
      nodeId,
      signals: m.bus,
      view: {
        localSources: () => (sends ? sources : []),
        remoteNodes: () => new Set(sends ? ['node-b'] : []),
      },
      senderConfig: { ...ice, iceLite: false },
      receiverConfig: { ...ice, iceLite: true },
      peerTimeoutMs: PEER_TIMEOUT_MS,
      nodes: m.registry,
      logger,
    });
    m.bus.onRequest((from, _type, body) => relays.handleOffer(from, body));
    m.bus.on('linkClose', (from, body) => void relays.handleClose(from, body));
    m.bus.on('linkLayers', (from, body) => {
      if (!lose(body)) relays.handleLayers(from, body);
    });
    closing.push(() => relays.close());
    return relays;
  };
  return {
    a: { ...a, relays: manager('node-a', a, true) },
    b: { ...b, relays: manager('node-b', b, false) },
  };
}

test('a connected link whose tracks send nothing yet is not judged silent', async () => {
  const { a, b } = await cluster();
  const opened = b.relays.waitFor('receiverOpened', { timeoutMs: 10_000 });
  const established = a.relays.waitFor('linkEstablished', { timeoutMs: 10_000 });
  a.relays.reconcile(ROOM);
  const [[receiver]] = await Promise.all([opened, established]);
  let closedWhy: string | undefined;
  b.relays.on('receiverClosed', (_r, reason) => {
    closedWhy = reason;
  });
  // An absence: checked after well over the peer timeout. werift's sender reports start only
  // with the first RTP packet; the link starts them itself so that the far side hears it.
  await sleep(2.5 * PEER_TIMEOUT_MS);
  assert.equal(closedWhy, undefined, `the receiver closed (${closedWhy})`);
  assert.deepEqual(b.relays.receivers, [receiver]);
});

test('the sending node leaving the registry closes its receivers, and the sender rebuilds', async () => {
  const { a, b } = await cluster();
  const opened = b.relays.waitFor('receiverOpened', { timeoutMs: 10_000 });
  a.relays.reconcile(ROOM);
  const [first] = await opened;
  await a.relays.waitFor('linkEstablished', { timeoutMs: 10_000 });

  const closed = b.relays.waitFor('receiverClosed', { timeoutMs: 5_000 });
  const linkClosed = a.relays.waitFor('linkClosed', { timeoutMs: 5_000 });
  const reopened = b.relays.waitFor('receiverOpened', { timeoutMs: 10_000 });
  // Node a says goodbye in the registry but its relay manager lives on: as if the registry
  // lost a live node. b closes what it receives from a and tells a, which rebuilds.
  await a.registry.deregister();
  const [receiver, reason] = await closed;
  assert.equal(receiver, first);
  assert.equal(reason, 'node-down');
  const [, linkReason] = await linkClosed;
  assert.equal(linkReason, 'closed-by-peer');
  const [second] = await reopened;
  assert.notEqual(second.linkId, first.linkId);
});

/**
 * A three-layer simulcast video that sends a packet of each layer every 20 ms to whatever
 * is attached, a keyframe of a layer after a request for it (as a publisher does), and
 * records what the link asks of it.
 */
function simulcastSource() {
  const sinks = new Set<RelaySink>();
  const demands: number[] = [];
  const keyframes: (number | undefined)[] = [];
  const source: RelaySource = {
    track: {
      trackId: 'TR_v',
      participantSid: 'S_a',
      identity: 'alice',
      kind: 'video',
      source: 'camera',
      codec: { mimeType: 'video/VP8', clockRate: 90_000 },
      layers: [
        { rid: 'q', width: 320, height: 180, maxBitrate: 150_000 },
        { rid: 'h', width: 640, height: 360, maxBitrate: 500_000 },
        { rid: 'f', width: 1280, height: 720, maxBitrate: 1_500_000 },
      ],
    },
    attach: (sink) => {
      sinks.add(sink);
      return () => sinks.delete(sink);
    },
    requestKeyframe: (layer) => {
      keyframes.push(layer);
      for (let l = 0; l < 3; l++) if (layer === undefined || layer === l) owed.add(l);
    },
    setDemand: (_sink, layer) => demands.push(layer),
  };
  const owed = new Set<number>();
  let n = 0;
  const timer = setInterval(() => {
    n++;
    for (let layer = 0; layer < 3; layer++) {
      const header = new RtpHeader({
        ssrc: 1000 + layer,
        sequenceNumber: n & 0xffff,
        timestamp: n * 1800,
        payloadType: 96,
        marker: true,
      });
      // A VP8 descriptor (S bit) and a few bytes: the link does not look inside.
      const buffer = new RtpPacket(header, Buffer.from([0x10, 0, 0, 0, 0])).serialize();
      const packet = {
        buffer,
        layer,
        ssrc: header.ssrc,
        sequenceNumber: header.sequenceNumber,
        timestamp: header.timestamp,
        marker: true,
        keyframe: owed.delete(layer),
        vp8: undefined,
      };
      for (const sink of sinks) sink.send(packet);
    }
  }, 20);
  closing.push(async () => clearInterval(timer));
  return { source, demands, keyframes };
}

/** Polls `done` every 20 ms until it holds; fails after `ms`. */
async function until(what: string, done: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a simulcast track: one m-line per layer, each sent only while the far node asks for it', async () => {
  const { source, demands, keyframes } = simulcastSource();
  const { a, b } = await cluster([source]);
  const arrived = b.relays.waitFor('relayedTrack', { timeoutMs: 10_000 });
  const established = a.relays.waitFor('linkEstablished', { timeoutMs: 10_000 });
  a.relays.reconcile(ROOM);
  const [[, , track], [link]] = await Promise.all([arrived, established]);
  assert.deepEqual(
    track.info.layers?.map((l) => [l.rid, l.width]),
    [
      ['q', 320],
      ['h', 640],
      ['f', 1280],
    ],
  );
  const counts = [0, 0, 0];
  const stop = (track as RelayedTrack).onPacket((_rtp, layer) => {
    counts[layer] = (counts[layer] ?? 0) + 1;
  });
  closing.push(async () => stop());
  assert.equal(link.peerConnection.getTransceivers().length, 3);
  // Nobody asked yet: the link tells the source so (dynacast may pause every layer).
  assert.deepEqual(demands, [-1]);

  track.setDemand([0]);
  await until('layer 0 on the link', () => (counts[0] ?? 0) >= 10);
  assert.deepEqual(link.layersSent('TR_v'), [0]);
  assert.equal(link.layersCarried, 1);
  assert.deepEqual(demands.at(-1), 0);
  assert.ok(keyframes.includes(0), `keyframe requests: ${keyframes}`);
  // An absence, checked over a while: layers 1 and 2 never left node a.
  await sleep(1_000);
  assert.deepEqual([counts[1], counts[2]], [0, 0]);

  track.setDemand([2, 0]);
  await until('layer 2 on the link', () => (counts[2] ?? 0) >= 10);
  assert.deepEqual(link.layersSent('TR_v'), [0, 2]);
  assert.equal(demands.at(-1), 2);
  assert.ok(keyframes.includes(2), `keyframe requests: ${keyframes}`);
  assert.equal(counts[1], 0);

  // A PLI for layer 2 from the far side reaches the source as a request for layer 2.
  const before = keyframes.length;
  track.requestKeyframe(2);
  await until('the PLI of layer 2', () => keyframes.slice(before).includes(2));

  track.setDemand([]);
  await until('the source told nothing is needed', () => demands.at(-1) === -1);
  assert.equal(link.layersCarried, 0);
  const stopped = [...counts];
  await sleep(500);
  // Packets in flight when the demand changed may still arrive; then nothing.
  assert.ok((counts[0] ?? 0) - (stopped[0] ?? 0) <= 5, `layer 0 went on: ${counts}`);
  assert.ok((counts[2] ?? 0) - (stopped[2] ?? 0) <= 5, `layer 2 went on: ${counts}`);
});

test('a lost layers message heals: the far node repeats its demand', async () => {
  const { source } = simulcastSource();
  let losing = false;
  let lost = 0;
  const { a, b } = await cluster([source], (body) => {
    if (!losing || !body.tracks.some((t) => t.layers.length > 0)) return false;
    losing = false;
    lost++;
    return true;
  });
  const arrived = b.relays.waitFor('relayedTrack', { timeoutMs: 10_000 });
  const established = a.relays.waitFor('linkEstablished', { timeoutMs: 10_000 });
  a.relays.reconcile(ROOM);
  const [[, , track], [link]] = await Promise.all([arrived, established]);
  let packets = 0;
  const stop = (track as RelayedTrack).onPacket(() => packets++);
  closing.push(async () => stop());
  losing = true;
  track.setDemand([0]);
  await until('the first demand lost', () => lost === 1);
  assert.deepEqual(link.layersSent('TR_v'), []);
  // The periodic repeat brings it.
  await until('layer 0 on the link', () => packets >= 10, LAYERS_REFRESH_MS + 5_000);
  assert.deepEqual(link.layersSent('TR_v'), [0]);
});
