/**
 * Two relay managers in one process, on the in-process bus and registry, with real werift
 * PeerConnections on loopback: how the receiving side ends a link whose sender died or went
 * silent, and how the sender rebuilds it. test/robustness/relay-source-death.test.ts does the
 * same with real node processes on a real Redis.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@geosfu/common';
import { MemoryNodeRegistry, MemoryNodeStore, type NodeRecordInput } from '@geosfu/registry';
import { type RTCPeerConnectionConfig, useOPUS } from 'werift';
// The registry's unit-test fixture (not part of the package's API, so by path).
import { nodeRecordFixture } from '../../registry/src/NodeRecord.fixtures.js';
import { MemoryRelayBus, MemoryRelayHub } from './MemoryRelayBus.js';
import { RelayManager } from './RelayManager.js';
import type { RelaySource } from './types.js';

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
  codecs: { audio: [useOPUS()] },
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
};

const closing: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

/** Node a sends `silentSource` to node b, which has nothing to send. */
async function cluster() {
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
        localSources: () => (sends ? [silentSource] : []),
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
