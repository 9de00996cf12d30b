/**
 * How many Redis round trips a room store operation costs, counted two ways on a real
 * redis-server: the store's own count (`roundTrips`, what `sfu_room_store_round_trips`
 * shows), and the commands Redis received from the store's connection (MONITOR). A join is
 * two: its read (with the room's SUBSCRIBE alongside, on the other connection) and one
 * script that checks and writes. What a node 190 ms from Redis pays per join follows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEV_CLUSTER_SECRET, RedisConnection } from '@geosfu/common';
import { RedisRoomStore, type SessionRecord } from '@geosfu/registry';
import type { Redis } from 'ioredis';
import { adminClient, type RedisServer, startRedis, stopSuiteRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const PREFIX = 'rt:';
let counter = 0;
const session = (identity: string): SessionRecord => ({
  sessionId: `S${++counter}`,
  identity,
  name: identity,
  nodeId: 'node-a',
  region: 'ams',
  joinedAt: Date.now(),
  tracks: [],
});

describe('Redis round trips of the room store', () => {
  let redis: RedisServer;
  let admin: Redis;
  let monitor: Redis | undefined;
  let connection: RedisConnection;
  let store: RedisRoomStore;
  /**
   * Commands Redis received from the store's command connection, lower-case names; EVAL
   * (a script's first run on the connection) is written as EVALSHA (its later runs).
   */
  const commands: string[] = [];
  const trips: [string, number][] = [];
  const seenMarks = new Set<string>();

  before(async () => {
    redis = await startRedis();
    admin = await adminClient(redis);
    connection = new RedisConnection({ url: redis.url, name: 'rt-node' });
    store = new RedisRoomStore({
      redis: connection,
      keyPrefix: PREFIX,
      secret: DEV_CLUSTER_SECRET,
    });
    await store.start();
    store.on('roundTrips', (op, n) => trips.push([op, n]));
    const own = `127.0.0.1:${connection.command.stream.localPort}`;
    monitor = await admin.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const name = String(args[0]).toLowerCase();
      if (source === own) commands.push(name === 'eval' ? 'evalsha' : name);
      else if (name === 'echo') seenMarks.add(String(args[1]));
    });
  });
  after(async () => {
    monitor?.disconnect();
    await store?.close();
    await connection?.close();
    await stopSuiteRedis(redis, admin);
  });

  /** Once a marker sent now shows on MONITOR, every earlier command has too. */
  const sync = async () => {
    const token = `mark-${++counter}`;
    await admin.echo(token);
    await waitUntil('the MONITOR stream to catch up', () =>
      seenMarks.has(token) ? true : undefined,
    );
  };
  /** Runs `op` and returns the commands the store sent and the trips it counted. */
  const measure = async (op: () => Promise<unknown>) => {
    await sync();
    commands.length = 0;
    trips.length = 0;
    await op();
    await sync();
    return { sent: [...commands], trips: [...trips] };
  };

  test('a join is two round trips: the read and one checked write', async () => {
    const first = await measure(() =>
      store.join('room', session('alice'), {
        maxParticipants: 10,
        watching: store.watch('room'),
      }),
    );
    assert.deepEqual(first.trips, [['join', 2]]);
    assert.deepEqual(first.sent, ['hgetall', 'evalsha']);

    const second = await measure(() => store.join('room', session('bob'), { maxParticipants: 10 }));
    assert.deepEqual(second.trips, [['join', 2]]);
    assert.deepEqual(second.sent, ['hgetall', 'evalsha']);
    assert.deepEqual((await store.participants('room')).map((s) => s.identity).sort(), [
      'alice',
      'bob',
    ]);
  });

  test('a leave and a track change take the lock: four round trips', async () => {
    const carol = session('carol');
    await store.join('room', carol, { maxParticipants: 10 });
    const tracks = await measure(() => store.setTracks('room', carol.sessionId, []));
    assert.deepEqual(tracks.trips, [['setTracks', 4]]);
    assert.deepEqual(tracks.sent, ['set', 'hgetall', 'evalsha', 'evalsha']);
    const leave = await measure(() => store.leave('room', carol.sessionId, 'left'));
    assert.deepEqual(leave.trips, [['leave', 4]]);
  });

  test('a join waits out a locked room and reads again', async () => {
    const lockKey = `${PREFIX}lock:room:busy`;
    await admin.set(lockKey, 'someone-else', 'PX', 10_000);
    await sync();
    commands.length = 0;
    trips.length = 0;
    const joining = store.join('busy', session('dave'), { maxParticipants: 10 });
    // The join reads and is refused by its script while the lock is held: several tries.
    await waitUntil('the join to be refused at least twice', async () =>
      commands.filter((c) => c === 'evalsha').length >= 2 ? true : undefined,
    );
    await admin.del(lockKey);
    await joining;
    assert.equal(trips.length, 1);
    const [[op, n] = ['', 0]] = trips;
    assert.equal(op, 'join');
    assert.ok(n >= 6, `two round trips per try, three tries or more: ${n}`);
    assert.equal(n % 2, 0);
    assert.deepEqual(
      (await store.participants('busy')).map((s) => s.identity),
      ['dave'],
    );
  });

  test('the digest matches for any bytes in the hash, so junk does not block joins', async () => {
    const key = `${PREFIX}room:junk:sessions`;
    await admin.hset(key, 'fäké', Buffer.from([0xff, 0xfe, 0x00, 0x41]));
    await admin.hset(key, 'plain', 'not a signed record');
    const result = await measure(() =>
      store.join('junk', session('erin'), { maxParticipants: 10 }),
    );
    assert.deepEqual(result.trips, [['join', 2]], 'the first checked write went through');
    assert.deepEqual(await admin.hlen(key), 1, 'junk removed with it');
  });
});
