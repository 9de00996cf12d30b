/**
 * The Redis room store against a real redis-server, two stores playing two nodes: events
 * across nodes, the page-refresh race under load, the room limit under concurrent joins,
 * concurrent reaping of a dead node, a Redis that hangs or restarts empty, and garbage on
 * the channels and in the hashes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEV_CLUSTER_SECRET, RedisConnection, type SfuError } from '@geosfu/common';
import {
  RedisRoomStore,
  type RoomEvent,
  type RoomStoreEvents,
  type SessionRecord,
} from '@geosfu/registry';
import type { Redis } from 'ioredis';
import { adminClient, type RedisServer, startRedis, stopSuiteRedis } from '../helpers/redis.js';

let prefixCounter = 0;
const newPrefix = () => `t${process.pid}-rooms-${++prefixCounter}:`;

let clock = 1_000;
let sessionCounter = 0;
function session(identity: string, nodeId: string, sessionId = `S${++sessionCounter}`) {
  return {
    sessionId,
    identity,
    name: identity,
    nodeId,
    region: nodeId === 'node-a' ? 'ams' : 'sin',
    joinedAt: ++clock,
    tracks: [],
  } satisfies SessionRecord;
}

const video = { trackId: 'TR_v', kind: 'video', source: 'camera', muted: false } as const;
const unavailable = (error: SfuError) => {
  assert.equal(error.code, 'SERVICE_UNAVAILABLE', error.message);
  return true;
};

/** Resolves with the first event that matches; rejects after `timeoutMs`. */
function next<K extends keyof RoomStoreEvents>(
  store: RedisRoomStore,
  event: K,
  match: (...args: RoomStoreEvents[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<RoomStoreEvents[K]> {
  return store.waitFor(event, { filter: match, timeoutMs });
}

/** Every room event a store receives, and a way to wait until some have arrived. */
function recorder(store: RedisRoomStore) {
  const seen: { room: string; event: RoomEvent }[] = [];
  const waiters = new Set<() => void>();
  const off = store.on('event', (room, event) => {
    seen.push({ room, event });
    for (const w of [...waiters]) w();
  });
  return {
    seen,
    off,
    /** Resolves when `count` events match. */
    until(
      what: string,
      match: (room: string, event: RoomEvent) => boolean,
      count = 1,
      timeoutMs = 10_000,
    ): Promise<RoomEvent[]> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hits = seen.filter((s) => match(s.room, s.event)).map((s) => s.event);
          if (hits.length < count) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hits);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const n = seen.filter((s) => match(s.room, s.event)).length;
          reject(new Error(`${what}: ${n} of ${count} events within ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
  };
}

const ids = (sessions: SessionRecord[]) => sessions.map((s) => s.sessionId);
const chat = (origin: string, text: string) => ({
  type: 'chat' as const,
  origin,
  from: { sessionId: 'SX', identity: 'x', name: 'x' },
  text,
  ts: Date.now(),
});
/** A chat sent after some events: once it arrives, everything before it has arrived too. */
const isChat = (text: string) => (_room: string, e: RoomEvent) =>
  e.type === 'chat' && e.text === text;

describe('RedisRoomStore against a real Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  const stores: RedisRoomStore[] = [];
  /** Each store plays a node: its own connection. */
  const connections = new Map<RedisRoomStore, RedisConnection>();
  const open = async (prefix: string) => {
    const connection = new RedisConnection({ url: redis.url });
    const store = new RedisRoomStore({
      redis: connection,
      keyPrefix: prefix,
      secret: DEV_CLUSTER_SECRET,
    });
    stores.push(store);
    connections.set(store, connection);
    await store.start();
    return store;
  };

  before(async () => {
    redis = await startRedis();
    admin = await adminClient(redis);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all([...connections.values()].map((c) => c.close()));
    await stopSuiteRedis(redis, admin);
  });

  test('two nodes: joins, replacement, tracks, chat and leave are seen on both', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    await a.watch('r');
    await b.watch('r');
    const onA = recorder(a);
    const onB = recorder(b);

    const alice = session('alice', 'node-a');
    const bob = session('bob', 'node-b');
    assert.deepEqual(await a.join('r', alice, { maxParticipants: 5 }), {
      replaced: undefined,
      participants: [alice],
    });
    const second = await b.join('r', bob, { maxParticipants: 5 });
    assert.deepEqual(ids(second.participants), [alice.sessionId, bob.sessionId]);
    await b.setTracks('r', bob.sessionId, [video]);
    // Alice refreshes onto node-b.
    const alice2 = session('alice', 'node-b');
    const third = await b.join('r', alice2, { maxParticipants: 5 });
    assert.deepEqual(third.replaced, alice);
    assert.equal(await a.leave('r', alice.sessionId, 'disconnected'), false, 'late leave');
    await a.chat('r', chat('node-a', 'hi'));
    assert.equal(await b.leave('r', bob.sessionId, 'left'), true);

    const expected = [
      `joined:${alice.sessionId}@node-a`,
      `joined:${bob.sessionId}@node-b`,
      `tracks:${bob.sessionId}@node-b`,
      `left:${alice.sessionId}:replaced@node-b`,
      `joined:${alice2.sessionId}@node-b`,
      'chat:hi@node-a',
      `left:${bob.sessionId}:left@node-b`,
    ];
    const line = (e: RoomEvent) =>
      e.type === 'chat'
        ? `chat:${e.text}@${e.origin}`
        : `${e.type}:${e.session.sessionId}${e.type === 'left' ? `:${e.reason}` : ''}@${e.origin}`;
    for (const rec of [onA, onB]) {
      const all = await rec.until('every event', () => true, expected.length);
      assert.deepEqual(all.map(line), expected, 'the same events, in the same order, on both');
    }
    const tracks = onA.seen[2]?.event;
    assert.ok(tracks?.type === 'tracks');
    assert.deepEqual(tracks.session.tracks, [video]);
    assert.deepEqual(await a.participants('r'), [alice2]);

    // Keys: the room hash and noderooms expire eventually; an emptied room leaves nothing.
    const ttl = await admin.pttl(`${prefix}room:r:sessions`);
    assert.ok(ttl > 23 * 3600_000 && ttl <= 24 * 3600_000, `room TTL ${ttl}`);
    assert.deepEqual(await admin.smembers(`${prefix}noderooms:node-b`), ['r']);
    assert.deepEqual(await admin.smembers(`${prefix}noderooms:node-a`), [], 'no session left');
    assert.equal(await b.leave('r', alice2.sessionId, 'left'), true);
    assert.equal(await admin.exists(`${prefix}room:r:sessions`), 0, 'empty room deleted');
    assert.equal(await admin.exists(`${prefix}noderooms:node-b`), 0);
    assert.deepEqual(await admin.keys(`${prefix}lock:*`), [], 'no lock left behind');
    await assert.rejects(b.setTracks('r', bob.sessionId, []), (e: SfuError) => {
      assert.equal(e.code, 'NOT_FOUND');
      return true;
    });

    // Unwatched: no more events.
    await a.unwatch('r');
    await b.chat('r', chat('node-b', 'after unwatch'));
    await onB.until('chat on b', isChat('after unwatch'));
    assert.ok(!onA.seen.some((s) => isChat('after unwatch')(s.room, s.event)));
  });

  test('refresh storm: 100 joins of one identity from two nodes, late leaves in between', async (t) => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const watcher = await open(prefix);
    await watcher.watch('storm');
    const events = recorder(watcher);
    const byNode = { 'node-a': a, 'node-b': b } as const;
    const bob = session('bob', 'node-b');
    await b.join('storm', bob, { maxParticipants: 3 });

    const leaves: Promise<{ id: string; removed: boolean }>[] = [];
    const joined: string[] = [];
    const t0 = Date.now();
    // Both nodes join "alice" in turn, as fast as they can; each join that replaces an older
    // session makes that session's node close it (leave) while the joins go on.
    const storm = async (node: 'node-a' | 'node-b') => {
      for (let i = 0; i < 50; i++) {
        const s = session('alice', node);
        const result = await byNode[node].join('storm', s, { maxParticipants: 3 });
        joined.push(s.sessionId);
        const old = result.replaced;
        if (old) {
          const owner = byNode[old.nodeId as 'node-a' | 'node-b'];
          leaves.push(
            owner
              .leave('storm', old.sessionId, 'disconnected')
              .then((removed) => ({ id: old.sessionId, removed })),
          );
        }
      }
    };
    await Promise.all([storm('node-a'), storm('node-b')]);
    const results = await Promise.all(leaves);
    t.diagnostic(`100 joins and ${leaves.length} leaves in ${Date.now() - t0} ms`);

    const participants = await watcher.participants('storm');
    const alices = participants.filter((s) => s.identity === 'alice');
    assert.equal(alices.length, 1, `alice has ${alices.length} sessions`);
    assert.ok(
      participants.some((s) => s.sessionId === bob.sessionId),
      'bob untouched',
    );
    assert.equal(participants.length, 2);

    // The events tell the same story, in lock order: 100 joined, 99 replaced, and a leave
    // that returned true removed exactly its own session (here: none could, all were
    // replaced before their leave).
    const joins = await events.until(
      'alice joined',
      (_r, e) => e.type === 'joined' && e.session.identity === 'alice',
      100,
    );
    await watcher.chat('storm', chat('node-a', 'end of storm'));
    await events.until('end of storm', isChat('end of storm'));
    const lefts = events.seen
      .map((s) => s.event)
      .filter((e): e is Extract<RoomEvent, { type: 'left' }> => e.type === 'left');
    assert.equal(lefts.filter((e) => e.reason === 'replaced').length, 99);
    for (const { id, removed } of results) {
      if (!removed) continue;
      assert.ok(lefts.some((e) => e.session.sessionId === id && e.reason === 'disconnected'));
    }
    assert.equal(
      lefts.filter((e) => e.reason === 'disconnected').length,
      results.filter((r) => r.removed).length,
    );
    assert.ok(!lefts.some((e) => e.session.sessionId === bob.sessionId));
    const joinedIds = joins.map((e) => (e.type === 'joined' ? e.session.sessionId : ''));
    assert.equal(joinedIds.at(-1), alices[0]?.sessionId, 'the survivor is the last that joined');
    assert.equal(new Set(joinedIds).size, 100);
    assert.equal(joined.length, 100);
  });

  test('the room limit holds under 20 concurrent joins from two nodes', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const attempts = Array.from({ length: 20 }, (_, i) => {
      const node = i % 2 === 0 ? 'node-a' : 'node-b';
      return (node === 'node-a' ? a : b).join('full', session(`user-${i}`, node), {
        maxParticipants: 10,
      });
    });
    const results = await Promise.allSettled(attempts);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 10);
    assert.equal(refused.length, 10);
    for (const r of refused) {
      const error = r.reason as SfuError;
      assert.equal(error.code, 'ROOM_FULL', error.message);
      assert.equal(error.message, 'room full has its maximum of 10 participants');
    }
    assert.equal((await a.participants('full')).length, 10);
    assert.equal(await admin.hlen(`${prefix}room:full:sessions`), 10);
  });

  test('a dead node is reaped once when two survivors reap it at the same time', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const dead = await open(prefix);
    const rooms = ['r1', 'r2', 'r3'];
    for (const room of rooms) await a.watch(room);
    const events = recorder(a);
    const doomed: string[] = [];
    for (const [i, room] of rooms.entries()) {
      for (let j = 0; j <= i; j++) {
        const s = session(`d${i}${j}`, 'node-c');
        doomed.push(s.sessionId);
        await dead.join(room, s, { maxParticipants: 10 });
      }
    }
    const alive = session('alice', 'node-a');
    await a.join('r1', alive, { maxParticipants: 10 });
    await dead.close(); // a crash: no leave

    const counts = await Promise.all([a.reapNode('node-c'), b.reapNode('node-c')]);
    assert.equal(counts[0] + counts[1], doomed.length, `reaped ${counts}`);
    assert.equal(await b.reapNode('node-c'), 0, 'nothing left');

    for (const room of rooms) await a.chat(room, chat('node-a', `after reap ${room}`));
    for (const room of rooms) await events.until(room, isChat(`after reap ${room}`));
    const lefts = events.seen.filter((s) => s.event.type === 'left').map((s) => s.event);
    assert.equal(lefts.length, doomed.length, 'one left per session');
    for (const e of lefts) {
      assert.ok(e.type === 'left');
      assert.equal(e.reason, 'node-died');
      assert.equal(e.origin, 'cluster:reaper');
    }
    assert.deepEqual(
      lefts.map((e) => (e.type === 'left' ? e.session.sessionId : '')).sort(),
      [...doomed].sort(),
    );
    assert.deepEqual(await a.participants('r1'), [alive]);
    assert.deepEqual(await a.participants('r2'), []);
    assert.equal(await admin.exists(`${prefix}noderooms:node-c`), 0);
    assert.equal(await admin.exists(`${prefix}room:r3:sessions`), 0);
    assert.equal(await admin.exists(`${prefix}lock:reap:node-c`), 0);
  });

  test('garbage on a room channel and in a room hash is dropped, counted, not trusted', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    await a.watch('g');
    const events = recorder(a);
    const errors: string[] = [];
    a.on('rejected', (kind, reason) => errors.push(`${kind}/${reason}`));
    const channel = `${prefix}room:g:events`;
    await admin.publish(channel, 'not json at all');
    await admin.publish(channel, '{"type":"joined","origin":"x","session":{"sessionId":"S"}}');
    await admin.publish(channel, JSON.stringify({ ...chat('x', 'evil'), text: 'x'.repeat(5000) }));
    await a.chat('g', chat('node-a', 'good'));
    await events.until('the good chat', isChat('good'));
    assert.equal(events.seen.length, 1, 'only the valid event came through');
    assert.deepEqual(errors, [
      'room-event/malformed',
      'room-event/signature',
      'room-event/signature',
    ]);
    errors.length = 0;

    // Bad entries in the hash (none signed): skipped by reads and by the room limit, and
    // removed (and counted) by the next change of the room.
    const good = session('alice', 'node-a');
    await a.join('g', good, { maxParticipants: 2 });
    const key = `${prefix}room:g:sessions`;
    await admin.hset(key, 'junk', '{not json');
    await admin.hset(key, 'liar', JSON.stringify(session('mallory', 'node-a', 'not-liar')));
    await admin.hset(key, 'evil', JSON.stringify({ ...session('eve', 'a:b', 'evil') }));
    assert.deepEqual(await a.participants('g'), [good]);
    const bob = session('bob', 'node-a');
    const joined = await a.join('g', bob, { maxParticipants: 2 });
    assert.deepEqual(ids(joined.participants), [good.sessionId, bob.sessionId]);
    assert.equal(await admin.hlen(key), 2, 'the junk went with the join');
    assert.deepEqual(errors.sort(), [
      'session/malformed',
      'session/signature',
      'session/signature',
    ]);
    // A real record copied to another field (a session id it was not signed for) is junk too.
    await admin.hset(key, 'copy', (await admin.hget(key, bob.sessionId)) ?? '');
    assert.deepEqual(ids(await a.participants('g')), [good.sessionId, bob.sessionId]);
  });

  test('a busy lock: SERVICE_UNAVAILABLE after the retries; close() ends a lock wait', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    await admin.set(`${prefix}lock:room:busy`, 'someone else', 'PX', 10_000);
    const t0 = Date.now();
    await assert.rejects(
      a.join('busy', session('alice', 'node-a'), { maxParticipants: 5 }),
      (e: SfuError) => {
        assert.equal(e.code, 'SERVICE_UNAVAILABLE');
        assert.match(e.message, /room busy is busy/);
        return true;
      },
    );
    const waited = Date.now() - t0;
    assert.ok(waited >= 49 * 20 && waited < 8_000, `gave up after ${waited} ms`);

    const b = await open(prefix);
    const waiting = b.join('busy', session('bob', 'node-b'), { maxParticipants: 5 });
    const ended = assert.rejects(waiting, (e: Error) => e.name === 'InvalidStateError');
    const t1 = Date.now();
    await b.close();
    await ended;
    assert.ok(Date.now() - t1 < 500, 'the wait ended with close(), not after its retries');
    await b.close(); // idempotent
    await assert.rejects(b.participants('busy'), (e: Error) => e.name === 'InvalidStateError');
    await admin.del(`${prefix}lock:room:busy`);
  });

  test('a hung Redis: fail fast, reconnected after it answers, reassert fixes the rest', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    await b.watch('p');
    const events = recorder(b);
    const kept = session('alice', 'node-a');
    const ended = session('amy', 'node-a');
    await a.join('p', kept, { maxParticipants: 5 });
    await a.join('p', ended, { maxParticipants: 5 });

    const reconnected = next(a, 'reconnected', () => true, 15_000);
    redis.pause();
    try {
      // The first command meets the hang and times out ...
      await assert.rejects(
        a.join('p', session('ann', 'node-a'), { maxParticipants: 5 }),
        unavailable,
      );
      assert.equal(a.connected, false);
      // ... and then the store refuses at once.
      const t0 = Date.now();
      await assert.rejects(a.leave('p', ended.sessionId, 'left'), unavailable);
      await assert.rejects(a.participants('p'), unavailable);
      assert.ok(Date.now() - t0 < 100, `refused after ${Date.now() - t0} ms`);
    } finally {
      redis.resume();
    }
    await reconnected;
    assert.equal(a.connected, true);
    // The lock the timed-out join may have taken (Redis ran the SET after the pause) was
    // freed on recovery: the next join does not wait for it to expire.
    const t1 = Date.now();
    const late = session('abe', 'node-a');
    await a.join('p', late, { maxParticipants: 5 });
    assert.ok(Date.now() - t1 < 1_000, `join after recovery took ${Date.now() - t1} ms`);

    // amy's leave failed during the outage: reassert removes her, keeps the others.
    await a.reassert('node-a', new Map([['p', [{ ...kept, tracks: [video] }, late]]]));
    assert.deepEqual(await b.participants('p'), [{ ...kept, tracks: [video] }, late]);
    await events.until(
      'amy removed',
      (_r, e) =>
        e.type === 'left' && e.session.sessionId === ended.sessionId && e.reason === 'disconnected',
    );
    await events.until(
      'alice updated',
      (_r, e) => e.type === 'tracks' && e.session.sessionId === kept.sessionId,
    );
  });

  test('Redis restarts empty: refused while down, reconnected, reassert restores exactly', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    await a.watch('x');
    await b.watch('x');
    const onB = recorder(b);
    const onA = recorder(a);
    const a1 = session('alice', 'node-a');
    const a2 = session('amy', 'node-a');
    const a3 = session('ann', 'node-a');
    const b1 = session('bob', 'node-b');
    await a.join('x', a1, { maxParticipants: 5 });
    await a.join('x', a2, { maxParticipants: 5 });
    await a.join('y', a3, { maxParticipants: 5 });
    await b.join('x', b1, { maxParticipants: 5 });

    // Nothing runs on the store now: its connection is what notices.
    const down = connections.get(a)?.waitFor('down', { timeoutMs: 5_000 });
    await redis.stop();
    await down;
    assert.equal(a.connected, false);
    const t0 = Date.now();
    await assert.rejects(
      a.join('x', session('abe', 'node-a'), { maxParticipants: 5 }),
      unavailable,
    );
    await assert.rejects(a.leave('x', a2.sessionId, 'left'), unavailable);
    await assert.rejects(a.reapNode('node-z'), unavailable);
    await assert.rejects(b.participants('x'), unavailable);
    // Watching during the outage fails, but the room is subscribed once Redis is back.
    await assert.rejects(a.watch('z'), unavailable);
    assert.ok(Date.now() - t0 < 200, `refused after ${Date.now() - t0} ms`);
    // A store that starts now cannot: it says what to check.
    const lateConnection = new RedisConnection({ url: redis.url });
    const late = new RedisRoomStore({
      redis: lateConnection,
      keyPrefix: prefix,
      secret: DEV_CLUSTER_SECRET,
    });
    await assert.rejects(late.start(), (e: SfuError) => {
      assert.equal(e.code, 'SERVICE_UNAVAILABLE');
      assert.match(e.message, /REDIS_URL/);
      return true;
    });
    await assert.rejects(late.participants('x'), (e: Error) => e.name === 'InvalidStateError');
    await late.close();
    await lateConnection.close();

    const backA = next(a, 'reconnected', () => true, 15_000);
    const backB = next(b, 'reconnected', () => true, 15_000);
    await redis.restart();
    await Promise.all([backA, backB]);
    assert.equal(await admin.exists(`${prefix}room:x:sessions`), 0, 'the new server is empty');

    // a2 ended during the outage; a1 published a track.
    const liveA = new Map([
      ['x', [{ ...a1, tracks: [video] }]],
      ['y', [a3]],
    ]);
    await a.reassert('node-a', liveA);
    await b.reassert('node-b', new Map([['x', [b1]]]));
    assert.deepEqual(await b.participants('x'), [{ ...a1, tracks: [video] }, b1]);
    assert.deepEqual(await b.participants('y'), [a3]);
    assert.deepEqual((await admin.smembers(`${prefix}noderooms:node-a`)).sort(), ['x', 'y']);
    // Subscriptions are back on both (events of the reassert arrive), including the room
    // watched during the outage.
    await onB.until(
      'a1 back',
      (_r, e) => e.type === 'joined' && e.session.sessionId === a1.sessionId,
    );
    await onA.until(
      'b1 back',
      (_r, e) => e.type === 'joined' && e.session.sessionId === b1.sessionId,
    );
    await b.chat('z', chat('node-b', 'z after restart'));
    await onA.until('chat in z', isChat('z after restart'));
    // A second reassert with the same view changes nothing and publishes nothing.
    const before = onB.seen.length;
    await a.reassert('node-a', liveA);
    await a.chat('x', chat('node-a', 'marker'));
    await onB.until('marker', isChat('marker'));
    assert.equal(onB.seen.length, before + 1);
  });
});
