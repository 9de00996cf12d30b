/**
 * Relays between nodes on a real Redis: media published on one node reaches subscribers on
 * others through server-to-server PeerConnections opened and closed by the room monitor.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Bot, type BotOptions } from '@geosfu/client/bot';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import { Redis } from 'ioredis';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, type StartNodeOptions, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { assertStays, waitForEqual, waitUntil } from '../helpers/wait.js';
import { type RawClient, rawClient } from '../helpers/ws.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

const links = (node: NodeProcess, direction: 'in' | 'out') =>
  metricValue(node.url, 'sfu_relay_links', { direction });
/** Each node's relay links settle on `out`/`in`: the room monitors converge over Redis. */
const linksSettle = (node: NodeProcess, out: number, inbound: number) =>
  waitForEqual(
    `${node.nodeId} to have ${out} link(s) out and ${inbound} in`,
    async () => [await links(node, 'out'), await links(node, 'in')],
    [out, inbound],
  );

describe('relays between nodes', () => {
  let redis: RedisServer;
  const nodes = new Map<string, NodeProcess>();
  const processes: NodeProcess[] = [];
  const bots: Bot[] = [];
  const clients: RawClient[] = [];

  const start = async (options: StartNodeOptions) => {
    const p = await startNode({
      ...options,
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
        SFU_DEFAULT_REGION: 'ams',
      },
    });
    processes.push(p);
    return p;
  };
  const node = (region: string): NodeProcess => {
    const n = nodes.get(region);
    assert.ok(n, region);
    return n;
  };
  const bot = async (options: Omit<BotOptions, 'hostAddresses'>) => {
    const b = await Bot.connect({ hostAddresses: ['127.0.0.1'], ...options });
    bots.push(b);
    return b;
  };

  before(async () => {
    redis = await startRedis();
    for (const region of ['ams', 'hcm', 'sin'])
      nodes.set(region, await start({ region, nodeId: `node-${region}` }));
  });
  after(async () => {
    await Promise.allSettled(bots.map((b) => b.close()));
    for (const c of clients) c.close();
    await Promise.allSettled(processes.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  test('a publisher on ams reaches a subscriber on hcm through one relay link', async () => {
    const pub = await bot({
      url: node('ams').url,
      region: 'ams',
      room: 'r2',
      identity: 'eu',
      publish: { video: true, audio: true, keyframeIntervalMs: 600_000 },
      subscribe: false,
    });
    assert.equal(pub.route?.region, 'ams');
    const joinedAt = Date.now();
    const sub = await bot({ url: node('ams').url, region: 'hcm', room: 'r2', identity: 'vn' });
    assert.equal(sub.route?.region, 'hcm', 'the subscriber was pinned to hcm through /v1/route');
    await sub.waitForKeyframe('eu', 'video', 20_000);
    await sub.waitForPackets('eu', 'video', 200, 20_000);
    await sub.waitForPackets('eu', 'audio', 50, 20_000);
    const video = sub.stats().received.find((r) => r.participant === 'eu' && r.kind === 'video');
    const audio = sub.stats().received.find((r) => r.participant === 'eu' && r.kind === 'audio');
    assert.ok(video && audio);
    assert.ok(video.keyframes >= 1);
    console.log(
      `relay ams->hcm: first keyframe ${(video.firstKeyframeAtMs ?? 0) - joinedAt} ms after the subscriber's join; one-way latency video p50 ${video.latencyMs.p50?.toFixed(1)} ms p95 ${video.latencyMs.p95?.toFixed(1)} ms, audio p50 ${audio.latencyMs.p50?.toFixed(1)} ms`,
    );
    await linksSettle(node('ams'), 1, 0);
    await linksSettle(node('hcm'), 0, 1);
    assert.ok(
      (await metricValue(node('hcm').url, 'sfu_packets_total', {
        direction: 'in',
        path: 'relay',
        kind: 'video',
      })) > 100,
    );
    await waitUntil('the link set-up observed on ams', async () =>
      (await metricValue(node('ams').url, 'sfu_relay_setup_duration_seconds_count')) >= 1
        ? true
        : undefined,
    );

    // RTCP of the link is sampled into RTT, jitter and loss histograms labelled with the peer.
    await waitUntil('relay RTT samples on ams', async () =>
      (await metricValue(node('ams').url, 'sfu_rtt_seconds_count', {
        path: 'relay',
        peer_region: 'hcm',
      })) > 0
        ? true
        : undefined,
    );
    await waitUntil('relay jitter samples on hcm', async () =>
      (await metricValue(node('hcm').url, 'sfu_jitter_seconds_count', {
        path: 'relay',
        peer_region: 'ams',
        kind: 'video',
      })) > 0
        ? true
        : undefined,
    );
    await waitUntil('relay loss samples on ams', async () =>
      (await metricValue(node('ams').url, 'sfu_loss_ratio_count', {
        path: 'relay',
        peer_region: 'hcm',
      })) > 0
        ? true
        : undefined,
    );

    // The last participant leaving hcm closes the link to it.
    await sub.close();
    await waitUntil('link closed', async () =>
      (await links(node('ams'), 'out')) === 0 ? true : undefined,
    );
    await waitUntil('receiver closed', async () =>
      (await links(node('hcm'), 'in')) === 0 ? true : undefined,
    );
    await pub.close();
  });

  test('three nodes with a publisher on each: every bot receives both others', async () => {
    const regions = ['ams', 'hcm', 'sin'];
    const trio = await Promise.all(
      regions.map((region) =>
        bot({
          url: node(region).url,
          region,
          room: 'trio',
          identity: `p-${region}`,
          publish: { video: true, audio: true },
        }),
      ),
    );
    for (const [i, b] of trio.entries()) {
      for (const other of regions.filter((_, j) => j !== i)) {
        await b.waitForPackets(`p-${other}`, 'video', 60, 20_000);
        await b.waitForPackets(`p-${other}`, 'audio', 30, 20_000);
      }
    }
    // Each node sends to the two others and receives from them.
    for (const region of regions) await linksSettle(node(region), 2, 2);
    await Promise.all(trio.map((b) => b.close()));
    for (const region of regions) {
      await waitUntil(`${region} links closed`, async () =>
        (await links(node(region), 'out')) + (await links(node(region), 'in')) === 0
          ? true
          : undefined,
      );
    }
  });

  test('concurrent joins on two nodes end with exactly one link per direction', async () => {
    const joins: Promise<unknown>[] = [];
    for (let i = 0; i < 18; i++) {
      joins.push(
        (async () => {
          const c = await rawClient(node(i % 2 === 0 ? 'ams' : 'hcm').url);
          clients.push(c);
          c.send({
            type: 'join',
            id: 'j',
            token: await tokens.mint({ room: 'crowd', identity: `c${i}` }),
            autoSubscribe: false,
          });
          await c.waitFor((m) => m.type === 'joined', 15_000);
        })(),
      );
    }
    for (const region of ['ams', 'hcm']) {
      joins.push(
        bot({
          url: node(region).url,
          route: false,
          room: 'crowd',
          identity: `pub-${region}`,
          publish: { video: false, audio: true },
        }),
      );
    }
    await Promise.all(joins);
    for (const region of ['ams', 'hcm']) await linksSettle(node(region), 1, 1);
    // A duplicate link, if the monitors raced, would show up within a reconcile or two.
    await assertStays(
      'exactly one link each way on both nodes',
      async () => {
        for (const region of ['ams', 'hcm'])
          if ((await links(node(region), 'out')) !== 1 || (await links(node(region), 'in')) !== 1)
            return false;
        return true;
      },
      1_000,
    );
    for (const c of clients.splice(0)) c.close();
    await Promise.all(bots.splice(0).map((b) => b.close()));
  });

  test('a forged relay message is rejected and counted', async () => {
    const target = node('hcm');
    const before = await metricValue(target.url, 'sfu_relay_messages_rejected_total');
    const redisClient = new Redis(redis.url);
    try {
      const forged = {
        v: 1,
        type: 'close',
        id: 'x'.repeat(16),
        from: 'node-ams',
        to: 'node-hcm',
        ts: Date.now(),
        body: { room: 'r', linkId: 'l', reason: 'forged' },
        sig: '00'.repeat(32),
      };
      const channels = (await redisClient.pubsub('CHANNELS', '*relay*')) as string[];
      const channel = channels.find((c) => c.endsWith('node-hcm'));
      assert.ok(channel, `hcm listens on a relay channel (${channels.join(', ')})`);
      await redisClient.publish(channel, JSON.stringify(forged));
      await redisClient.publish(channel, 'not even json');
    } finally {
      redisClient.disconnect();
    }
    await waitUntil('rejections counted', async () =>
      (await metricValue(target.url, 'sfu_relay_messages_rejected_total')) >= before + 2
        ? true
        : undefined,
    );
    assert.ok(
      (await metricValue(target.url, 'sfu_relay_messages_rejected_total', {
        reason: 'signature',
      })) >= 1,
    );
  });

  test('SIGKILL of the subscriber node closes the link on the publisher node', async () => {
    const pub = await bot({
      url: node('ams').url,
      route: false,
      room: 'kill',
      identity: 'eu',
      publish: { video: true, audio: false },
    });
    const sub = await bot({ url: node('sin').url, route: false, room: 'kill', identity: 'sg' });
    await sub.waitForPackets('eu', 'video', 30, 20_000);
    await waitForEqual('ams to send on one link', () => links(node('ams'), 'out'), 1);
    const t0 = Date.now();
    await node('sin').stop('SIGKILL');
    bots.splice(bots.indexOf(sub), 1);
    await waitUntil(
      'link to the dead node closed',
      async () => ((await links(node('ams'), 'out')) === 0 ? true : undefined),
      TTL_MS + 15_000,
    );
    console.log(
      `link to a SIGKILLed node closed ${Date.now() - t0} ms after the kill (TTL ${TTL_MS} ms)`,
    );
    await pub.close();
  });
});
