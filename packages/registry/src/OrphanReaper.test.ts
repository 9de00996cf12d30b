import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryNodeRegistry, MemoryNodeStore } from './MemoryNodeRegistry.js';
import { MemoryRoomHub, MemoryRoomStore, REAP_ORIGIN } from './MemoryRoomStore.js';
import { nodeRecordFixture } from './NodeRecord.fixtures.js';
import type { NodeRecordInput } from './NodeRecord.js';
import { OrphanReaper } from './OrphanReaper.js';
import type { RoomEvent, SessionRecord } from './RoomStore.js';

function record(id: string): NodeRecordInput {
  return nodeRecordFixture(id);
}

function session(sessionId: string, nodeId: string): SessionRecord {
  return {
    sessionId,
    identity: sessionId,
    name: sessionId,
    nodeId,
    region: 'ams',
    joinedAt: 1,
    tracks: [],
  };
}

test('sessions of a node missing from the registry go after the grace, and only those', async (t) => {
  const store = new MemoryNodeStore();
  const self = new MemoryNodeRegistry({ store });
  const other = new MemoryNodeRegistry({ store });
  const late = new MemoryNodeRegistry({ store });
  const hub = new MemoryRoomHub();
  const rooms = new MemoryRoomStore({ hub });
  const reaper = new OrphanReaper({
    registry: self,
    rooms,
    nodeId: 'node-a',
    graceMs: 2_000,
    intervalMs: 50,
  });
  t.after(async () => {
    await reaper.close();
    await Promise.all([self.close(), other.close(), late.close(), rooms.close()]);
  });
  await self.register(record('node-a'));
  await other.register(record('node-b'));
  await rooms.watch('r');
  for (const [id, node] of [
    ['s-a', 'node-a'],
    ['s-b', 'node-b'],
    ['s-gone', 'node-gone'],
    ['s-late', 'node-late'],
  ] as const) {
    await rooms.join('r', session(id, node), { maxParticipants: 10 });
  }
  const left: RoomEvent[] = [];
  rooms.on('event', (_room, event) => event.type === 'left' && left.push(event));
  const t0 = Date.now();
  reaper.start();
  // node-late registers within the grace (a node that was just starting): it keeps its session.
  await new Promise((resolve) => setTimeout(resolve, 100));
  await late.register(record('node-late'));
  const [n] = await reaper.waitFor('reaped', { timeoutMs: 5_000 });
  assert.ok(Date.now() - t0 >= 2_000, `reaped after ${Date.now() - t0} ms, inside the grace`);
  assert.equal(n, 1);
  assert.deepEqual((await rooms.participants('r')).map((s) => s.sessionId).sort(), [
    's-a',
    's-b',
    's-late',
  ]);
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.deepEqual(
    left.map((e) => e.type === 'left' && [e.session.sessionId, e.reason, e.origin]),
    [['s-gone', 'node-died', REAP_ORIGIN]],
  );
});
