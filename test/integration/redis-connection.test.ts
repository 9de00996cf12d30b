/**
 * The one Redis connection layer (RedisConnection) against a real redis-server: down and up
 * events with their reason, every channel subscribed again after a restart and after a hang,
 * keyspace notification flags set again after a restart, defineCommand scripts that survive
 * SCRIPT FLUSH and a restart, and a close that leaves no connection and no timer behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RedisConnection, type SfuError } from '@geosfu/common';
import type { Redis } from 'ioredis';
import { adminClient, type RedisServer, startRedis, stopSuiteRedis } from '../helpers/redis.js';
import { assertStays, waitUntil } from '../helpers/wait.js';

let counter = 0;
const newName = () => `rc${process.pid}x${++counter}`;

/** Collects the messages its handler receives; `until(n)` waits for the n-th. */
function collector() {
  const seen: string[] = [];
  const handler = (message: string) => {
    seen.push(message);
  };
  return {
    seen,
    handler,
    until: (count: number) =>
      waitUntil(`${count} messages`, () => (seen.length >= count ? true : undefined), 10_000),
  };
}

describe('RedisConnection against a real Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  const opened: RedisConnection[] = [];
  const open = async (name = newName()) => {
    const connection = new RedisConnection({ url: redis.url, name });
    opened.push(connection);
    await connection.start();
    return connection;
  };
  /** Subscribers of `channel` on the server. */
  const numsub = async (channel: string) =>
    ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];
  const clientNames = async () =>
    ((await admin.client('LIST')) as string)
      .split('\n')
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
      .filter(Boolean);

  before(async () => {
    redis = await startRedis();
    admin = await adminClient(redis);
  });
  after(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await stopSuiteRedis(redis, admin);
  });

  test('handlers by channel; unsubscribe stops delivery and drops the channel with its last handler', async () => {
    const c = await open();
    const one = collector();
    const two = collector();
    await c.subscribe('ch:a', one.handler);
    await c.subscribe('ch:a', two.handler);
    await c.subscribe('ch:b', one.handler);
    assert.equal(await numsub('ch:a'), 1, 'one SUBSCRIBE per channel, not per handler');
    await admin.publish('ch:a', 'a1');
    await admin.publish('ch:b', 'b1');
    await one.until(2);
    await two.until(1);
    assert.deepEqual(one.seen, ['a1', 'b1']);
    assert.deepEqual(two.seen, ['a1']);

    await c.unsubscribe('ch:a', one.handler);
    assert.equal(await numsub('ch:a'), 1, 'still subscribed for the other handler');
    await c.unsubscribe('ch:a', two.handler);
    assert.equal(await numsub('ch:a'), 0);
    assert.deepEqual(c.channels(), ['ch:b']);
    await admin.publish('ch:a', 'a2');
    await admin.publish('ch:b', 'b2');
    await one.until(3);
    assert.deepEqual(one.seen, ['a1', 'b1', 'b2']);
    assert.deepEqual(two.seen, ['a1']);
  });

  test('Redis restarts: down with its reason, up once every channel is subscribed again', async () => {
    const c = await open();
    const got = collector();
    await c.subscribe('ch:r1', got.handler);
    await c.subscribe('ch:r2', got.handler);
    const reasons: string[] = [];
    c.on('down', (reason) => reasons.push(reason));
    const down = c.waitFor('down', { timeoutMs: 5_000 });
    await redis.stop();
    await down;
    assert.equal(c.connected, false);
    assert.equal(c.state, 'down');
    assert.match(reasons[0] ?? '', /connection closed/);
    // While it is down a new subscription is refused at once but kept for later.
    await assert.rejects(c.subscribe('ch:r3', got.handler), (e: SfuError) => {
      assert.equal(e.code, 'SERVICE_UNAVAILABLE');
      return true;
    });

    const up = c.waitFor('up', { timeoutMs: 15_000 });
    await redis.restart();
    const [info] = await up;
    assert.equal(info.reconnected, true);
    assert.equal(c.connected, true);
    assert.equal(reasons.length, 1, `one outage, one down event: ${reasons.join(' | ')}`);
    // At `up` the SUBSCRIBEs are done: no wait needed before publishing.
    for (const channel of ['ch:r1', 'ch:r2', 'ch:r3']) {
      assert.equal(await numsub(channel), 1, `${channel} subscribed again`);
      await admin.publish(channel, channel);
    }
    await got.until(3);
    assert.deepEqual(got.seen, ['ch:r1', 'ch:r2', 'ch:r3']);
  });

  test('a hung Redis: a failed command takes it down, a PING brings it up, subscriptions hold', async () => {
    const c = await open();
    const got = collector();
    await c.subscribe('ch:h', got.handler);
    const down = c.waitFor('down', { timeoutMs: 5_000 });
    redis.pause();
    try {
      // What a user does with a command that failed without a reply (here: timed out).
      const error = await c.command.get('k').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof Error, 'the command timed out');
      c.commandFailed('get', error);
      const [reason] = await down;
      assert.match(reason, /get failed/);
      assert.equal(c.connected, false);
    } finally {
      redis.resume();
    }
    const [info] = await c.waitFor('up', { timeoutMs: 10_000 });
    assert.equal(info.reconnected, false, 'no connection was lost: Redis did not restart');
    await admin.publish('ch:h', 'after the hang');
    await got.until(1);
    // A reply error is Redis answering: not an outage.
    await admin.set('str', 'x');
    await c.command.hget('str', 'f').catch((error: unknown) => c.commandFailed('hget', error));
    assert.equal(c.state, 'up');
  });

  test('unsubscribed while Redis is away: not subscribed again when it is back', async () => {
    const c = await open();
    const handler = () => {};
    for (const channel of ['ch:keep', 'ch:drop']) await c.subscribe(channel, handler);
    const down = c.waitFor('down', { timeoutMs: 5_000 });
    await redis.stop();
    await down;
    await assert.rejects(c.unsubscribe('ch:drop', handler));
    const up = c.waitFor('up', { timeoutMs: 15_000 });
    await redis.restart();
    await up;
    assert.equal(await numsub('ch:keep'), 1);
    assert.equal(await numsub('ch:drop'), 0);
  });

  test('keyspace notification flags are kept with the others and set again after a restart', async () => {
    const c = await open();
    await admin.config('SET', 'notify-keyspace-events', 'Kg');
    assert.equal(await c.requireKeyspaceEvents('Ex', 'test consequence'), true);
    const flags = async () =>
      ((await admin.config('GET', 'notify-keyspace-events')) as string[])[1] ?? '';
    for (const flag of 'KgEx') assert.ok((await flags()).includes(flag), await flags());

    const up = c.waitFor('up', { timeoutMs: 15_000 });
    await redis.restart();
    await up;
    const after = await flags();
    assert.ok(after.includes('E') && after.includes('x'), `flags after the restart: ${after}`);
    await admin.config('SET', 'notify-keyspace-events', '');
  });

  test('defineCommand scripts run, and survive SCRIPT FLUSH and a restart', async () => {
    const c = await open();
    const lua =
      "return redis.call('INCRBY', KEYS[1], ARGV[1]) + redis.call('INCRBY', KEYS[2], ARGV[1])";
    const incrBy = c.defineScript('testIncrBy', lua);
    assert.equal(c.defineScript('testIncrBy', lua), incrBy, 'defined once, the same runner');
    assert.throws(() => c.defineScript('testIncrBy', 'return 1'), TypeError);
    assert.throws(() => c.defineScript('get', 'return 1'), TypeError, 'not a client method');
    assert.equal(await incrBy(['s:a', 's:b'], [2]), 4);
    await admin.script('FLUSH');
    assert.equal(await incrBy(['s:a', 's:b'], [3]), 10, 'EVAL again after NOSCRIPT');

    const up = c.waitFor('up', { timeoutMs: 15_000 });
    await redis.restart();
    await up;
    assert.equal(await incrBy(['s:a', 's:b'], [1]), 2, 'loaded on the new server');
  });

  test('start fails with SERVICE_UNAVAILABLE on a stopped Redis and can be retried', async () => {
    await redis.stop();
    const c = new RedisConnection({ url: redis.url, name: newName() });
    opened.push(c);
    try {
      await assert.rejects(c.start(), (e: SfuError) => {
        assert.equal(e.code, 'SERVICE_UNAVAILABLE');
        assert.match(e.message, /REDIS_URL/);
        return true;
      });
      await assert.rejects(
        c.subscribe('x', () => {}),
        (e: Error) => e.name === 'InvalidStateError',
      );
    } finally {
      await redis.restart();
    }
    await c.start();
    assert.equal(c.connected, true);
  });

  test('close quits both connections, clears its timers, and is idempotent', async () => {
    // The other tests' connections are reconnecting after the restarts: close them first,
    // so that what is counted below is this test's alone.
    await Promise.all(opened.map((other) => other.close()));
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const sockets = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const timersBefore = timers();
    const socketsBefore = sockets();

    // One that is up, with a subscription.
    const name = newName();
    const c = await open(name);
    await c.subscribe('ch:close', () => {});
    assert.deepEqual((await clientNames()).filter((n) => n.startsWith(name)).sort(), [
      name,
      `${name}-sub`,
    ]);
    await Promise.all([c.close(), c.close()]);
    assert.equal(c.state, 'closed');
    assert.equal(c.connected, false);
    await waitUntil('the server to drop both', async () =>
      (await clientNames()).some((n) => n.startsWith(name)) ? undefined : true,
    );
    await c.unsubscribe('ch:close', () => {}); // a no-op once closed
    await assert.rejects(c.start(), (e: Error) => e.name === 'InvalidStateError');

    // One that is down, probing: close stops the probe and the reconnection for good.
    const dName = newName();
    const d = await open(dName);
    const down = d.waitFor('down', { timeoutMs: 5_000 });
    await redis.stop();
    try {
      await down;
      await d.close();
    } finally {
      await redis.restart();
    }
    assert.equal(d.state, 'closed');
    await waitUntil('the admin client back', async () =>
      (await admin.ping().catch(() => undefined)) ? true : undefined,
    );
    // Its reconnection back-off is at most 2 s: it would be back well within 5 s.
    await assertStays(
      'the closed connection stays away',
      async () => !(await clientNames()).some((n) => n.startsWith(dName)),
      5_000,
      250,
    );
    await waitUntil(
      'no timer and no socket of ours left',
      () => (timers() <= timersBefore && sockets() <= socketsBefore ? true : undefined),
      15_000,
      50,
      () =>
        `timers ${timers()} (before ${timersBefore}), sockets ${sockets()} (before ${socketsBefore})`,
    );
  });
});
