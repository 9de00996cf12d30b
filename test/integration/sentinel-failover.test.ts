/**
 * Redis Sentinel failover under a live cluster: a primary, a replica and three sentinels on
 * loopback, two nodes configured with REDIS_SENTINELS, a room whose media crosses a relay.
 * The primary is SIGKILLed, then (once it is back as a replica) a `SENTINEL FAILOVER` moves
 * the master again. Each time media must keep flowing, and within 15 s of the promotion the
 * control plane must be whole again on the new master without restarting a node: joins on
 * both nodes, both registry records, the room listing everyone once, a new relay set up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Bot } from '@geosfu/client/bot';
import { RedisConnection, SfuError } from '@geosfu/common';
import { BotPool } from '../helpers/bots.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type SentinelSet, startSentinelSet } from '../helpers/redis.js';
import { joinRaw, roomView } from '../helpers/rooms.js';
import { waitForEqual, waitUntil } from '../helpers/wait.js';
import type { RawClient } from '../helpers/ws.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
/** The acceptance bound: the control plane is back this long after the promotion. */
const BACK_WITHIN_MS = 15_000;
/** Longest silence of the relayed stream tolerated: media does not touch Redis. */
const MAX_MEDIA_GAP_MS = 3_000;

/** Records the longest time the bot's packet count of a stream stood still. */
class GapWatch {
  #longest = 0;
  #last = 0;
  #lastChange = Date.now();
  readonly #timer: NodeJS.Timeout;

  constructor(bot: Bot, identity: string, kind: 'audio' | 'video') {
    this.#timer = setInterval(() => {
      const stream = bot
        .stats()
        .received.find((r) => r.participant === identity && r.kind === kind);
      const now = Date.now();
      if (stream && stream.packets !== this.#last) {
        this.#last = stream.packets;
        this.#lastChange = now;
      }
      this.#longest = Math.max(this.#longest, now - this.#lastChange);
    }, 50);
  }

  /** The longest gap so far, ms. */
  stop(): number {
    clearInterval(this.#timer);
    return Math.max(this.#longest, Date.now() - this.#lastChange);
  }
}

describe('Redis Sentinel failover', () => {
  let sentinel: SentinelSet;
  const nodes: NodeProcess[] = [];
  const bots = new BotPool();
  const clients: RawClient[] = [];
  let sub: Bot;

  const node = (region: string): NodeProcess => {
    const n = nodes.find((p) => p.region === region);
    assert.ok(n, region);
    return n;
  };

  before(async () => {
    sentinel = await startSentinelSet();
    for (const region of ['ams', 'hcm']) {
      nodes.push(
        await startNode({
          region,
          nodeId: `node-${region}`,
          env: {
            // With sentinels the URL's host is not used: only its password, db and scheme.
            REDIS_URL: 'redis://sentinel/0',
            REDIS_SENTINELS: sentinel.addresses,
            REDIS_SENTINEL_MASTER: sentinel.masterName,
            SFU_REGISTRY_TTL_MS: String(TTL_MS),
            SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
            SFU_DEFAULT_REGION: 'ams',
          },
        }),
      );
    }
    await bots.connect({
      url: node('ams').url,
      route: false,
      room: 'fo',
      identity: 'eu',
      publish: { video: true, audio: true },
    });
    sub = await bots.connect({ url: node('hcm').url, route: false, room: 'fo', identity: 'vn' });
    await sub.waitForPackets('eu', 'video', 60, 20_000);
    assert.ok(
      (await metricValue(node('hcm').url, 'sfu_packets_total', {
        direction: 'in',
        path: 'relay',
        kind: 'video',
      })) > 0,
      'the video reaches hcm over the relay',
    );
  });
  after(async () => {
    await bots.closeAll();
    for (const c of clients) c.close();
    await Promise.allSettled(nodes.map((n) => n.stop('SIGKILL')));
    await sentinel?.stop();
  });

  const expected = ['eu', 'vn'];

  /**
   * Everything the issue asks of the control plane after a promotion, each awaited with the
   * deadline `promotedAt + 15 s`; round `n` names its participants and room.
   */
  const checkBack = async (round: number, master: number, promotedAt: number) => {
    const left = () => Math.max(1_000, promotedAt + BACK_WITHIN_MS - Date.now());
    for (const region of ['ams', 'hcm']) {
      const identity = `late-${round}-${region}`;
      let last = '';
      await waitUntil(
        `a join on ${region} after failover ${round}`,
        async () => {
          try {
            await joinRaw(node(region).url, 'fo', identity, clients);
            return true;
          } catch (error) {
            last = String(error); // SERVICE_UNAVAILABLE until the node found the new master
            return undefined;
          }
        },
        left(),
        250,
        () => last,
      );
      expected.push(identity);
    }
    const admin = await sentinel.client(master);
    await waitUntil(
      'both registry records on the new master',
      async () =>
        (await admin.exists('sfu:node:node-ams', 'sfu:node:node-hcm')) === 2 ? true : undefined,
      left(),
    );
    for (const region of ['ams', 'hcm']) {
      await waitForEqual(
        `${region}'s view of the room: every participant exactly once`,
        async () => (await roomView(node(region).url, 'fo')).map((p) => p.identity).sort(),
        [...expected].sort(),
        left(),
      );
    }
    // A relay set up after the failover (its offer and answer cross the new master).
    const room = `after-${round}`;
    await bots.connect({
      url: node('ams').url,
      route: false,
      room,
      identity: `pub-${round}`,
      publish: { video: true, audio: false },
      subscribe: false,
    });
    const late = await bots.connect({
      url: node('hcm').url,
      route: false,
      room,
      identity: `sub-${round}`,
    });
    await late.waitForPackets(`pub-${round}`, 'video', 30, left());
  };

  const failovers = (n: NodeProcess) => metricValue(n.url, 'sfu_redis_failovers_total');

  test('SIGKILL of the primary: media flows, the control plane is back on the promoted replica', async () => {
    const old = await sentinel.masterPort();
    assert.equal(old, sentinel.servers[0]?.port, 'the first server is the master');
    const gap = new GapWatch(sub, 'eu', 'video');
    const killedAt = Date.now();
    await sentinel.servers[0]?.crash();
    const master = await sentinel.waitForPromotion(old ?? 0, 30_000);
    const promotedAt = Date.now();
    await checkBack(1, master, promotedAt);
    const backAt = Date.now();
    for (const n of nodes) {
      await waitUntil(`${n.nodeId} to count the failover`, async () =>
        (await failovers(n)) >= 1 ? true : undefined,
      );
      assert.ok(
        n.logs.some((l) => l.msg === 'Redis master changed (failover)'),
        `${n.nodeId} logs the failover`,
      );
    }
    const longest = gap.stop();
    console.log(
      `SIGKILL: promoted ${promotedAt - killedAt} ms after the kill; joins, records, room and a new relay back ${backAt - promotedAt} ms after the promotion; longest media gap ${longest} ms`,
    );
    assert.ok(longest < MAX_MEDIA_GAP_MS, `media kept flowing (longest gap ${longest} ms)`);
  });

  test('SENTINEL FAILOVER: the same, with the old primary back as a replica', async () => {
    const current = await sentinel.masterPort();
    assert.ok(current !== undefined);
    await sentinel.servers[0]?.restart({ args: ['--replicaof', '127.0.0.1', String(current)] });
    await sentinel.waitForHealthy(1);
    const before = await Promise.all(nodes.map(failovers));
    const gap = new GapWatch(sub, 'eu', 'video');
    const startedAt = Date.now();
    await sentinel.failover();
    const master = await sentinel.waitForPromotion(current);
    const promotedAt = Date.now();
    assert.equal(master, sentinel.servers[0]?.port, 'the old primary is master again');
    await checkBack(2, master, promotedAt);
    const backAt = Date.now();
    for (const [i, n] of nodes.entries()) {
      await waitUntil(`${n.nodeId} to count the second failover`, async () =>
        (await failovers(n)) > (before[i] ?? 0) ? true : undefined,
      );
    }
    const longest = gap.stop();
    console.log(
      `SENTINEL FAILOVER: promoted ${promotedAt - startedAt} ms after the command; back ${backAt - promotedAt} ms after the promotion; longest media gap ${longest} ms`,
    );
    assert.ok(longest < MAX_MEDIA_GAP_MS, `media kept flowing (longest gap ${longest} ms)`);
  });

  test('wrong sentinel settings stop the start with an error that names them', async () => {
    const [first] = sentinel.addresses.split(',');
    const [host = '', port = ''] = (first ?? '').split(':');
    for (const [masterName, where] of [
      ['no-such-master', { host, port: Number(port) }],
      [sentinel.masterName, { host: '127.0.0.1', port: 1 }],
    ] as const) {
      const connection = new RedisConnection({
        url: 'redis://sentinel/0',
        sentinel: { sentinels: [where], masterName },
      });
      try {
        await assert.rejects(
          connection.start(),
          (e: unknown) =>
            e instanceof SfuError &&
            e.code === 'SERVICE_UNAVAILABLE' &&
            /REDIS_SENTINELS/.test(e.message),
        );
      } finally {
        await connection.close();
      }
    }
  });
});
