/**
 * The Redis node registry against a real redis-server: membership events, deregistration,
 * expiry of a SIGKILLed node, a Redis that restarts empty, a Redis that hangs, and a Redis
 * that refuses CONFIG (managed services).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ClusterStateCodec, DEV_CLUSTER_SECRET, RedisConnection } from '@geosfu/common';
import {
  type NodeRecordInput,
  type NodeRegistry,
  type NodeRegistryEvents,
  RedisNodeRegistry,
} from '@geosfu/registry';
import type { Redis } from 'ioredis';
import { onExit } from '../helpers/exit.js';
import { adminClient, type RedisServer, startRedis, stopSuiteRedis } from '../helpers/redis.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TTL_MS = 2_000;
const HEARTBEAT_MS = 500;
const SECRET = DEV_CLUSTER_SECRET;
/** Deadlines and reconnection back-off scaled to this suite's short heartbeat. */
const REDIS_TIMING = {
  commandTimeoutMs: HEARTBEAT_MS,
  connectTimeoutMs: 1_000,
  reconnectMaxMs: HEARTBEAT_MS,
};

let prefixCounter = 0;
const newPrefix = () => `t${process.pid}-${++prefixCounter}:`;

function record(id: string, region = 'ams'): NodeRecordInput {
  return {
    id,
    region,
    latitude: 52.37,
    longitude: 4.9,
    url: `http://${id}.test:7880`,
    signalUrl: `ws://${id}.test:7880/v1/signal`,
    state: 'active',
    capacity: 100,
    load: { participants: 0, publishedTracks: 0, cpu: 0, forwardedBitrate: 0 },
    version: '0.1.0',
    startedAt: Date.now(),
  };
}

/** Resolves with the first event that matches; rejects after `timeoutMs`. */
function next<K extends keyof NodeRegistryEvents>(
  registry: NodeRegistry,
  event: K,
  match: (...args: NodeRegistryEvents[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<NodeRegistryEvents[K]> {
  return registry.waitFor(event, { filter: match, timeoutMs });
}

/** Polls a Redis-side condition (there is no event for "a key exists") with a deadline. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A registry in a child process, so that it can be SIGKILLed like a crashing node. */
async function childRegistry(
  url: string,
  prefix: string,
  input: NodeRecordInput,
): Promise<ChildProcess> {
  const code = `
    const { RedisConnection } = await import('@geosfu/common');
    const { RedisNodeRegistry } = await import('@geosfu/registry');
    const redis = new RedisConnection({ url: process.env.REDIS_URL, ...${JSON.stringify(REDIS_TIMING)} });
    const registry = new RedisNodeRegistry({
      redis, keyPrefix: process.env.PREFIX, secret: process.env.SECRET,
      ttlMs: ${TTL_MS}, heartbeatMs: ${HEARTBEAT_MS},
    });
    await registry.register(JSON.parse(process.env.RECORD));
    process.stdout.write('registered\\n');
    process.on('SIGTERM', () =>
      registry.close().then(() => redis.close()).then(() => process.exit(0)),
    );
  `;
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        REDIS_URL: url,
        PREFIX: prefix,
        SECRET,
        RECORD: JSON.stringify(input),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      if (line === 'registered') resolve();
    });
    child.once('exit', (code) => reject(new Error(`child registry exited with ${code}`)));
  });
  return child;
}

const children = new Set<ChildProcess>();
onExit(() => {
  for (const child of children) child.kill('SIGKILL');
});

async function sigkill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('RedisNodeRegistry against a real Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  const registries: RedisNodeRegistry[] = [];
  const connections: RedisConnection[] = [];
  const open = (prefix: string, options: { ttlMs?: number; heartbeatMs?: number } = {}) => {
    const connection = new RedisConnection({ url: redis.url, ...REDIS_TIMING });
    connections.push(connection);
    const r = new RedisNodeRegistry({
      redis: connection,
      keyPrefix: prefix,
      secret: SECRET,
      ttlMs: options.ttlMs ?? TTL_MS,
      heartbeatMs: options.heartbeatMs ?? HEARTBEAT_MS,
    });
    registries.push(r);
    return r;
  };

  before(async () => {
    redis = await startRedis();
    admin = await adminClient(redis);
  });
  after(async () => {
    await Promise.all(registries.map((r) => r.close()));
    await Promise.all(connections.map((c) => c.close()));
    for (const child of children) await sigkill(child);
    await stopSuiteRedis(redis, admin);
  });

  test('two registries see each other, updates and deregistration', async () => {
    const prefix = newPrefix();
    const a = open(prefix);
    const b = open(prefix);
    await a.register(record('node-a'));
    const bSeesA = next(b, 'nodeUp', (n) => n.id === 'node-a');
    const aSeesB = next(a, 'nodeUp', (n) => n.id === 'node-b');
    await b.register(record('node-b', 'sin'));
    await Promise.all([bSeesA, aSeesB]);
    assert.deepEqual(
      a.list().map((n) => n.id),
      ['node-a', 'node-b'],
    );
    assert.deepEqual(
      b.list().map((n) => n.id),
      ['node-a', 'node-b'],
    );
    assert.equal(a.get('node-b')?.region, 'sin');
    assert.equal((await admin.pttl(`${prefix}node:node-a`)) > 0, true, 'the record has a TTL');

    // A state change is published: seen well within a heartbeat.
    let t0 = Date.now();
    const drained = next(a, 'nodeUpdated', (n) => n.id === 'node-b' && n.state === 'draining');
    await b.update({ state: 'draining' });
    const [updated, previous] = await drained;
    assert.equal(previous.state, 'active');
    assert.equal(updated.state, 'draining');
    assert.ok(Date.now() - t0 < HEARTBEAT_MS, `state change took ${Date.now() - t0} ms`);

    // A load change goes out with the next heartbeat and is read by the next reconcile.
    t0 = Date.now();
    const loaded = next(a, 'nodeUpdated', (n) => n.id === 'node-b' && n.load.participants === 7);
    await b.update({ load: { participants: 7, cpu: 0.25 } });
    await loaded;
    assert.ok(Date.now() - t0 <= 3 * HEARTBEAT_MS, `load change took ${Date.now() - t0} ms`);
    assert.equal(a.get('node-b')?.load.cpu, 0.25);

    // Deregistration: key gone and the other side told at once, not at the next reconcile.
    t0 = Date.now();
    const down = next(a, 'nodeDown', (n) => n.id === 'node-b');
    await b.deregister();
    const [, reason] = await down;
    assert.equal(reason, 'deregistered');
    assert.ok(Date.now() - t0 < HEARTBEAT_MS, `deregistration took ${Date.now() - t0} ms`);
    assert.equal(await admin.exists(`${prefix}node:node-b`), 0);
    assert.deepEqual(
      a.list().map((n) => n.id),
      ['node-a'],
    );
    await b.close();
    await a.close();
    await a.close(); // idempotent
    assert.equal(await admin.exists(`${prefix}node:node-a`), 0, 'close() deregisters');
  });

  test('garbage in Redis and on the channel is ignored, not trusted', async () => {
    const prefix = newPrefix();
    const a = open(prefix);
    await a.register(record('node-a'));
    const ups: string[] = [];
    a.on('nodeUp', (n) => ups.push(n.id));
    const evil = { ...record('evil'), updatedAt: Date.now(), url: 'javascript:alert(1)' };
    await admin.set(`${prefix}node:evil`, JSON.stringify(evil), 'PX', 10_000);
    await admin.set(`${prefix}node:junk`, '{not json', 'PX', 10_000);
    await admin.set(`${prefix}node:liar`, JSON.stringify({ ...evil, id: 'node-b' }), 'PX', 10_000);
    await admin.publish(`${prefix}nodes`, '{"type":"up","node":{"id":"x"}}');
    await admin.publish(`${prefix}nodes`, 'not json at all');
    await admin.publish(`${prefix}nodes`, '{"type":"down","id":"node-a"}'); // not about us
    // A valid record after the garbage: once it is seen, the garbage has been read too.
    const good = next(a, 'nodeUp', (n) => n.id === 'node-good');
    // Signed as a node of the cluster signs it (the secret is what makes it believed).
    const key = `${prefix}node:node-good`;
    const signed = new ClusterStateCodec(SECRET).seal('node-record', key, {
      ...record('node-good'),
      updatedAt: Date.now(),
    });
    await admin.set(key, signed, 'PX', 10_000);
    await good;
    await a.refresh();
    assert.deepEqual(ups, ['node-good']);
    assert.deepEqual(
      a.list().map((n) => n.id),
      ['node-a', 'node-good'],
    );
    await a.close();
  });

  test('a SIGKILLed node disappears within TTL + one heartbeat', async (t) => {
    const prefix = newPrefix();
    const watcher = open(prefix);
    await watcher.start();
    const up = next(watcher, 'nodeUp', (n) => n.id === 'doomed');
    const child = await childRegistry(redis.url, prefix, record('doomed'));
    await up;

    const down = next(watcher, 'nodeDown', (n) => n.id === 'doomed', 10_000);
    const ttlLeft = await admin.pttl(`${prefix}node:doomed`);
    const t0 = Date.now();
    await sigkill(child);
    const [, reason] = await down;
    const elapsed = Date.now() - t0;
    t.diagnostic(`PTTL at kill ${ttlLeft} ms, nodeDown after ${elapsed} ms`);
    assert.equal(reason, 'expired');
    assert.ok(ttlLeft > 0 && ttlLeft <= TTL_MS, `PTTL before the kill: ${ttlLeft}`);
    // Not before the record's TTL ran out (minus the time PTTL and the kill took) ...
    assert.ok(elapsed >= ttlLeft - 100, `gone after ${elapsed} ms, TTL left was ${ttlLeft} ms`);
    assert.ok(elapsed >= 1_000, `gone after ${elapsed} ms: too early for a ${TTL_MS} ms TTL`);
    // ... and within TTL + one heartbeat, with room for a slow CI machine.
    assert.ok(elapsed <= TTL_MS + HEARTBEAT_MS + 1_500, `gone only after ${elapsed} ms`);
  });

  test('without keyspace notifications, the reconcile still notices expiry', async (t) => {
    const prefix = newPrefix();
    const watcher = open(prefix);
    await watcher.start();
    const up = next(watcher, 'nodeUp', (n) => n.id === 'doomed-2');
    const child = await childRegistry(redis.url, prefix, record('doomed-2'));
    await up;
    // Someone (an operator, a managed service) turned notifications off after we started.
    const flags = (await admin.config('GET', 'notify-keyspace-events')) as string[];
    await admin.config('SET', 'notify-keyspace-events', '');
    try {
      const down = next(watcher, 'nodeDown', (n) => n.id === 'doomed-2', 10_000);
      const t0 = Date.now();
      await sigkill(child);
      await down;
      const elapsed = Date.now() - t0;
      t.diagnostic(`nodeDown (reconcile only) after ${elapsed} ms`);
      assert.ok(elapsed <= TTL_MS + HEARTBEAT_MS + 1_500, `gone only after ${elapsed} ms`);
    } finally {
      await admin.config('SET', 'notify-keyspace-events', flags[1] ?? '');
    }
  });

  test('Redis restarts empty: records come back, views hold, subscriptions resume', async (t) => {
    const prefix = newPrefix();
    const a = open(prefix);
    const b = open(prefix);
    const c = open(prefix);
    await a.register(record('node-a'));
    await b.register(record('node-b'));
    await c.register(record('node-c'));
    await until('every registry sees the others', async () =>
      [a, b, c].every((r) => r.list().length === 3),
    );
    // node-c "dies" during the outage: it stops heartbeating without deregistering.
    await c.close({ deregister: false });

    const downs: string[] = [];
    const errors: string[] = [];
    a.on('nodeDown', (n, reason) => downs.push(`${n.id}:${reason}`));
    a.on('redisError', (op) => errors.push(op));
    b.on('redisError', (op) => errors.push(op));
    const cGone = next(a, 'nodeDown', (n) => n.id === 'node-c', 15_000);

    await admin.set(`${prefix}sentinel`, 'old server');
    await redis.restart();
    const back = Date.now();
    assert.equal(await admin.exists(`${prefix}sentinel`), 0, 'the new server started empty');

    // Each live registry writes its whole record again on its next heartbeat.
    await until(
      'node-a and node-b re-registered',
      async () =>
        (await admin.exists(`${prefix}node:node-a`, `${prefix}node:node-b`)) === 2 &&
        (await admin.pttl(`${prefix}node:node-a`)) > 0,
      4 * HEARTBEAT_MS + 2_000,
    );
    const reRegistered = Date.now() - back;
    t.diagnostic(`re-registered ${reRegistered} ms after the restart`);
    assert.ok(reRegistered <= 4 * HEARTBEAT_MS + 1_000, `re-registered after ${reRegistered} ms`);
    assert.equal(await admin.exists(`${prefix}node:node-c`), 0, 'the dead node stays gone');

    // ioredis re-subscribed both subscriber connections to the nodes channel.
    await until('subscriptions are back', async () => {
      const [, count] = (await admin.pubsub('NUMSUB', `${prefix}nodes`)) as [string, number];
      return count === 2;
    });
    // Notification flags were forgotten by the new server; the registry set them again.
    await until('keyspace notifications re-enabled', async () => {
      const [, flags = ''] = (await admin.config('GET', 'notify-keyspace-events')) as string[];
      return flags.includes('E') && (flags.includes('x') || flags.includes('A'));
    });

    // The live nodes never left the views: missing keys right after the restart are not
    // taken for dead nodes (one TTL of grace).
    assert.ok(!downs.some((d) => d.startsWith('node-a') || d.startsWith('node-b')), `${downs}`);
    assert.ok(a.get('node-b') && b.get('node-a'));

    // The dead node is dropped once the grace has run out: TTL + a heartbeat after reconnect.
    await cGone;
    const cAfter = Date.now() - back;
    t.diagnostic(`dead node-c dropped ${cAfter} ms after the restart; errors: ${errors.join(',')}`);
    assert.ok(cAfter >= TTL_MS - 500, `node-c dropped after ${cAfter} ms, before its grace`);
    assert.ok(cAfter <= TTL_MS + 3 * HEARTBEAT_MS + 2_000, `node-c dropped after ${cAfter} ms`);

    // Pub/sub works again end to end: a state change is seen before any reconcile could.
    const t0 = Date.now();
    const drained = next(a, 'nodeUpdated', (n) => n.id === 'node-b' && n.state === 'draining');
    await b.update({ state: 'draining' });
    await drained;
    assert.ok(Date.now() - t0 < HEARTBEAT_MS, `state change took ${Date.now() - t0} ms`);
    await Promise.all([a.close(), b.close()]);
  });

  test('a hung Redis is counted and logged, not thrown; the last view is kept', async () => {
    const prefix = newPrefix();
    const a = open(prefix);
    const b = open(prefix);
    await a.register(record('node-a'));
    await b.register(record('node-b'));
    await until('a sees b', async () => a.get('node-b') !== undefined);

    const failed = next(a, 'redisError', (op) => op === 'heartbeat' || op === 'reconcile');
    redis.pause();
    try {
      const [op, error] = await failed;
      assert.ok(['heartbeat', 'reconcile'].includes(op));
      assert.ok(error instanceof Error);
      assert.deepEqual(
        a.list().map((n) => n.id),
        ['node-a', 'node-b'],
        'the last known view is kept while Redis does not answer',
      );
    } finally {
      redis.resume();
    }
    // And it recovers: a change is seen again.
    const drained = next(a, 'nodeUpdated', (n) => n.id === 'node-b' && n.state === 'draining');
    await b.update({ state: 'draining' });
    await drained;
    await Promise.all([a.close(), b.close()]);
  });

  test('a stopped Redis: start() fails with SERVICE_UNAVAILABLE, running ones carry on', async () => {
    const prefix = newPrefix();
    const a = open(prefix);
    await a.register(record('node-a'));
    const failed = next(a, 'redisError');
    await redis.stop();
    await failed;
    assert.equal(a.connected, false);
    assert.deepEqual(
      a.list().map((n) => n.id),
      ['node-a'],
    );

    const late = open(prefix);
    await assert.rejects(late.start(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'SERVICE_UNAVAILABLE');
      assert.match(error.message, /REDIS_URL/);
      return true;
    });

    await redis.restart();
    await until(
      'node-a re-registered',
      async () => (await admin.exists(`${prefix}node:node-a`)) === 1,
    );
    await late.start(); // a failed start can be retried
    assert.ok(late.get('node-a'));
    await Promise.all([a.close(), late.close()]);
  });
});

describe('RedisNodeRegistry on a Redis that refuses CONFIG (managed services)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis({ args: ['--rename-command', 'CONFIG', '""'] });
  });
  after(async () => {
    await redis?.stop();
  });

  test('works without keyspace notifications, expiry found by the reconcile', async (t) => {
    const prefix = newPrefix();
    const connection = new RedisConnection({ url: redis.url, ...REDIS_TIMING });
    const watcher = new RedisNodeRegistry({
      redis: connection,
      keyPrefix: prefix,
      secret: SECRET,
      ttlMs: TTL_MS,
      heartbeatMs: HEARTBEAT_MS,
    });
    try {
      await watcher.start();
      const up = next(watcher, 'nodeUp', (n) => n.id === 'doomed-3');
      const child = await childRegistry(redis.url, prefix, record('doomed-3'));
      await up;
      const down = next(watcher, 'nodeDown', (n) => n.id === 'doomed-3', 10_000);
      const t0 = Date.now();
      await sigkill(child);
      const [, reason] = await down;
      const elapsed = Date.now() - t0;
      t.diagnostic(`nodeDown (reconcile only, CONFIG refused) after ${elapsed} ms`);
      assert.equal(reason, 'expired');
      assert.ok(elapsed <= TTL_MS + HEARTBEAT_MS + 1_500, `gone only after ${elapsed} ms`);
    } finally {
      await watcher.close();
      await connection.close();
    }
  });
});
