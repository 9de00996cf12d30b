import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidStateError, SfuError } from '@geosfu/common';
import { MemoryNodeRegistry, MemoryNodeStore } from './MemoryNodeRegistry.js';
import { nodeRecordFixture } from './NodeRecord.fixtures.js';
import { type NodeRecordInput, parseNodeRecord } from './NodeRecord.js';
import { type NodeDownReason, resolveTiming } from './NodeRegistry.js';

function record(id: string, startedAt = 1_000): NodeRecordInput {
  return nodeRecordFixture(id, { region: 'hcm', latitude: 10.82, longitude: 106.63, startedAt });
}

describe('MemoryNodeRegistry', () => {
  test('register, see each other, update, deregister', async () => {
    const store = new MemoryNodeStore();
    const a = new MemoryNodeRegistry({ store });
    const b = new MemoryNodeRegistry({ store });
    try {
      await a.register(record('a'));
      const seen = a.waitFor('nodeUp');
      await b.register(record('b'));
      const [up] = await seen;
      assert.equal(up.id, 'b');
      assert.deepEqual(
        b.list().map((n) => n.id),
        ['a', 'b'],
      );
      assert.ok(Object.isFrozen(a.get('b')));

      const updated = a.waitFor('nodeUpdated');
      const next = await b.update({ state: 'draining', load: { participants: 3 } });
      assert.equal(next.load.participants, 3);
      assert.equal(next.load.cpu, 0, 'a partial load keeps the other fields');
      const [after, before] = await updated;
      assert.equal(after.state, 'draining');
      assert.equal(before.state, 'active');

      await assert.rejects(
        b.update({ load: { cpu: 2 } }),
        (e: SfuError) => e.code === 'INVALID_ARGUMENT',
      );
      await assert.rejects(b.register(record('b')), InvalidStateError);

      const down = a.waitFor('nodeDown');
      await b.deregister();
      const [gone, reason] = await down;
      assert.equal(gone.id, 'b');
      assert.equal(reason, 'deregistered');
      assert.equal(a.get('b'), undefined);
    } finally {
      await a.close();
      await b.close();
    }
    await a.close(); // idempotent
    assert.equal(store.list().length, 0);
    await assert.rejects(a.register(record('again')), InvalidStateError);
  });

  test('a record that is not refreshed expires (controlled clock)', async () => {
    let now = 1_000_000;
    const store = new MemoryNodeStore({ now: () => now });
    const watcher = new MemoryNodeRegistry({ store, ttlMs: 2_000, heartbeatMs: 500 });
    const dying = new MemoryNodeRegistry({ store, ttlMs: 2_000, heartbeatMs: 500 });
    try {
      await watcher.register(record('watcher'));
      await dying.register(record('dying'));
      await dying.close({ deregister: false }); // a crash: no goodbye
      assert.ok(watcher.get('dying'), 'still there inside the TTL');
      const downs: [string, NodeDownReason][] = [];
      watcher.on('nodeDown', (n, reason) => downs.push([n.id, reason]));
      now += 1_999;
      await watcher.refresh();
      assert.deepEqual(downs, []);
      now += 1;
      await watcher.refresh();
      assert.deepEqual(downs, [['dying', 'expired']]);
      // Our own record, not refreshed on this fake clock, is written again, not dropped.
      assert.deepEqual(
        watcher.list().map((n) => n.id),
        ['watcher'],
      );
    } finally {
      await watcher.close();
    }
  });

  test('expiry on the real clock, found by the heartbeat', async () => {
    const store = new MemoryNodeStore();
    const watcher = new MemoryNodeRegistry({ store, ttlMs: 2_000, heartbeatMs: 250 });
    const dying = new MemoryNodeRegistry({ store, ttlMs: 2_000, heartbeatMs: 250 });
    try {
      await watcher.start();
      await dying.register(record('dying'));
      const t0 = Date.now();
      await dying.close({ deregister: false });
      const [node, reason] = await watcher.waitFor('nodeDown', {
        signal: AbortSignal.timeout(5_000),
      });
      const elapsed = Date.now() - t0;
      assert.equal(node.id, 'dying');
      assert.equal(reason, 'expired');
      // The last refresh was up to one heartbeat before the close.
      assert.ok(elapsed >= 2_000 - 250 - 50 && elapsed <= 2_000 + 250 + 500, `${elapsed} ms`);
    } finally {
      await watcher.close();
    }
  });

  test('a restart under the same id is reported as down + up', async () => {
    const store = new MemoryNodeStore();
    const watcher = new MemoryNodeRegistry({ store });
    const first = new MemoryNodeRegistry({ store });
    const second = new MemoryNodeRegistry({ store });
    try {
      await watcher.start();
      await first.register(record('n', 1_000));
      await first.close({ deregister: false });
      const events: string[] = [];
      watcher.on('nodeDown', (n, reason) => events.push(`down:${n.startedAt}:${reason}`));
      watcher.on('nodeUp', (n) => events.push(`up:${n.startedAt}`));
      await second.register(record('n', 2_000));
      assert.deepEqual(events, ['down:1000:replaced', 'up:2000']);
    } finally {
      await Promise.all([watcher.close(), second.close()]);
    }
  });
});

describe('registry timing and records', () => {
  test('TTL and heartbeat bounds', () => {
    assert.deepEqual(resolveTiming({}), { ttlMs: 10_000, heartbeatMs: 3_000 });
    assert.deepEqual(resolveTiming({ ttlMs: 2_000, heartbeatMs: 500 }), {
      ttlMs: 2_000,
      heartbeatMs: 500,
    });
    for (const bad of [
      { ttlMs: 1_999 },
      { ttlMs: 120_001 },
      { ttlMs: 10_000, heartbeatMs: 249 },
      { ttlMs: 2_000, heartbeatMs: 1_000 },
      { heartbeatMs: 5_000 },
      { ttlMs: 2_500.5 },
    ]) {
      assert.throws(
        () => resolveTiming(bad),
        (e: unknown) => e instanceof SfuError && e.code === 'CONFIG_INVALID',
        JSON.stringify(bad),
      );
    }
    assert.throws(() => new MemoryNodeRegistry({ ttlMs: 1_000 }), SfuError);
  });

  test('records from outside are validated', () => {
    const good = { ...record('x'), updatedAt: 5 };
    assert.equal(parseNodeRecord(good).id, 'x');
    assert.equal(
      'extra' in parseNodeRecord({ ...good, extra: 1 }),
      false,
      'unknown fields are dropped',
    );
    for (const bad of [
      null,
      'x',
      { ...good, id: 'has space' },
      { ...good, latitude: 91 },
      { ...good, url: 'javascript:alert(1)' },
      { ...good, signalUrl: 'ftp://x' },
      { ...good, state: 'zombie' },
      { ...good, capacity: -1 },
      { ...good, load: { ...good.load, cpu: 1.5 } },
      { ...good, updatedAt: undefined },
    ]) {
      assert.throws(
        () => parseNodeRecord(bad),
        (e: unknown) => e instanceof SfuError && e.code === 'BAD_MESSAGE',
        JSON.stringify(bad),
      );
    }
  });
});
