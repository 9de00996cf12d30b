/**
 * Rooms and sessions shared across nodes on a real Redis: cross-node events, the page-refresh
 * race, the room limit under concurrency, every way out with its reason, a dead node's
 * sessions reaped, draining, and a Redis outage that media survives.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { Bot } from '@geosfu/client/bot';
import {
  CLOSE_CODES,
  DEV_API_KEY,
  DEV_API_SECRET,
  type ServerMessage,
  TokenService,
} from '@geosfu/common';
import { Redis } from 'ioredis';
import { type NodeProcess, type StartNodeOptions, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { joinRaw, roomView } from '../helpers/rooms.js';
import { waitForEqual, waitUntil } from '../helpers/wait.js';
import { type RawClient, rawClient } from '../helpers/ws.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

const isLeft = (identity: string) => (m: ServerMessage) =>
  m.type === 'participant.left' && m.identity === identity;

describe('rooms shared across nodes', () => {
  let redis: RedisServer;
  let a: NodeProcess;
  let b: NodeProcess;
  const processes: NodeProcess[] = [];
  const clients: RawClient[] = [];
  const bots: Bot[] = [];

  const start = async (options: StartNodeOptions) => {
    const p = await startNode({
      ...options,
      verbose: process.env.TEST_VERBOSE === '1',
      args: [
        '--ping-interval-ms',
        '300',
        '--ping-timeout-ms',
        '1500',
        '--peer-timeout-ms',
        '3000',
        '--max-participants',
        '10',
      ],
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
        SFU_DRAIN_TIMEOUT_MS: '5000',
      },
    });
    processes.push(p);
    return p;
  };
  /** A raw signalling client joined to `room` on `node`. */
  const join = (
    node: NodeProcess,
    room: string,
    identity: string,
    options: { autoPong?: boolean } = {},
  ) => joinRaw(node.url, room, identity, clients, options);
  /** A raw client on `node` that has sent a join (request id `j`); the test reads the answer. */
  const sendJoin = async (
    node: NodeProcess,
    room: string,
    identity: string,
    extra: { autoSubscribe?: boolean } = {},
  ) => {
    const c = await rawClient(node.url);
    clients.push(c);
    c.send({ type: 'join', id: 'j', token: await tokens.mint({ room, identity }), ...extra });
    return c;
  };
  const bot = async (node: NodeProcess, room: string, identity: string, publish: boolean) => {
    const b = await Bot.connect({
      url: node.url,
      route: false,
      room,
      identity,
      hostAddresses: ['127.0.0.1'],
      ...(publish ? { publish: { video: true, audio: true } } : {}),
    });
    bots.push(b);
    return b;
  };
  const view = (node: NodeProcess, room: string) => roomView(node.url, room);

  before(async () => {
    redis = await startRedis();
    a = await start({ region: 'ams', nodeId: 'node-a' });
    b = await start({ region: 'hcm', nodeId: 'node-b' });
  });
  after(async () => {
    await Promise.allSettled(bots.map((x) => x.close()));
    for (const c of clients) c.close();
    await Promise.allSettled(processes.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  test('participants on different nodes see each other, their tracks and chat', async () => {
    const alice = await join(a, 'x', 'alice');
    const bob = await bot(b, 'x', 'bob', true);
    const joined = await alice.client.waitFor(
      (m) => m.type === 'participant.joined' && m.participant.identity === 'bob',
    );
    assert.equal(joined.type === 'participant.joined' && joined.participant.nodeId, 'node-b');
    assert.ok(
      bob.participants().some((p) => p.identity === 'alice' && p.nodeId === 'node-a'),
      'the joined reply lists alice on node A',
    );
    await alice.client.waitFor(
      (m) =>
        m.type === 'track.published' &&
        m.participantSid === bob.sessionId &&
        m.track.kind === 'video',
    );
    await alice.client.waitFor(
      (m) =>
        m.type === 'track.published' &&
        m.participantSid === bob.sessionId &&
        m.track.kind === 'audio',
    );

    alice.client.send({ type: 'chat', text: 'hello from A' });
    const [chat] = await bob.waitFor('chat', { timeoutMs: 5_000 });
    assert.equal(chat.text, 'hello from A');
    assert.equal(chat.from.identity, 'alice');

    await bob.unpublish('audio');
    await alice.client.waitFor(
      (m) => m.type === 'track.unpublished' && m.participantSid === bob.sessionId,
    );
    await bob.close();
    const left = await alice.client.waitFor(isLeft('bob'));
    assert.equal(left.type === 'participant.left' && left.reason, 'left');
  });

  test('a refresh storm ends with exactly one session of the identity on every node', async () => {
    const watcherA = await join(a, 'storm', 'watch-a');
    const watcherB = await join(b, 'storm', 'watch-b');
    let previous: RawClient | undefined;
    let last = '';
    for (let i = 0; i < 100; i++) {
      // The new tab opens before the old one is gone; the old socket closes while the new
      // session is being set up, alternating between the two nodes.
      const { client, joined } = await join(i % 2 === 0 ? a : b, 'storm', 'refresher');
      previous?.close();
      previous = client;
      last = joined.sessionId;
    }
    // Each node learns of the other's joins and replacements over Redis pub/sub: its view
    // converges on the newest session, so it is awaited, not read once.
    for (const node of [a, b]) {
      await waitForEqual(
        `${node.nodeId} to see exactly the newest refresher session`,
        async () =>
          (await view(node, 'storm'))
            .filter((p) => p.identity === 'refresher')
            .map((p) => p.sessionId),
        [last],
      );
    }
    assert.equal(
      previous?.ws.readyState,
      previous?.ws.OPEN,
      'the newest session is still connected',
    );
    for (const w of [watcherA, watcherB]) {
      await waitUntil('every old session announced as gone', () =>
        w.client.messages.filter((m) => m.type === 'participant.left' && m.identity === 'refresher')
          .length >= 99
          ? true
          : undefined,
      );
    }
  });

  test('the room limit holds under 20 concurrent joins from two nodes', async () => {
    const mine: RawClient[] = [];
    const attempts = Array.from({ length: 20 }, async (_, i) => {
      const c = await sendJoin(i % 2 === 0 ? a : b, 'full', `p${i}`);
      mine[i] = c;
      return c.waitFor((m) => (m.type === 'joined' || m.type === 'error') && m.ref === 'j', 15_000);
    });
    const replies = await Promise.all(attempts);
    const ok = replies.filter((r) => r.type === 'joined').length;
    const full = replies.filter((r) => r.type === 'error' && r.code === 'ROOM_FULL').length;
    assert.equal(ok, 10);
    assert.equal(full, 10);
    const joined = replies.flatMap((r, i) => (r.type === 'joined' ? [`p${i}`] : [])).sort();
    // The replies come from the store under the room's lock; each node's view of the other
    // node's sessions arrives later, over pub/sub (this read once was flaky: 9 !== 10). A node
    // where every join failed has nobody in the room and keeps no view of it.
    for (const node of [a, b]) {
      const here = replies.some((r, i) => r.type === 'joined' && (i % 2 === 0) === (node === a));
      const expected = here ? joined : [];
      let listed: string[] = [];
      await waitUntil(
        `${node.nodeId} to list ${here ? 'the 10 joined sessions' : 'nobody'}`,
        async () => {
          listed = (await view(node, 'full')).map((p) => p.identity).sort();
          return isDeepStrictEqual(listed, expected) ? true : undefined;
        },
        15_000,
        50,
        () => {
          // A session that ended meanwhile was told why: say so, rather than only "9 !== 10".
          const ended = mine.flatMap((c, i) =>
            c.messages.filter((m) => m.type === 'leave').map((m) => `p${i}: ${JSON.stringify(m)}`),
          );
          return `expected ${JSON.stringify(expected)}, listed ${JSON.stringify(listed)}, ended: ${ended.join('; ') || 'none'}`;
        },
      );
    }
  });

  test('a node where every join failed keeps no view of the room and stops watching it', async () => {
    for (let i = 0; i < 10; i++) await join(a, 'crowded', `in${i}`);
    const late = await sendJoin(b, 'crowded', 'late', { autoSubscribe: false });
    const refused = await late.waitFor((m) => m.type === 'error' && m.ref === 'j');
    assert.equal(refused.type === 'error' && refused.code, 'ROOM_FULL');
    // Node B subscribed to the room's events for the join; with nobody of the room there, it
    // lets go of the room (before the fix it kept the subscription and a partial view).
    const redisClient = new Redis(redis.url);
    try {
      await waitForEqual("one node (A) subscribed to the room's channels", async () => {
        const channels = (await redisClient.pubsub('CHANNELS', '*crowded*')) as string[];
        const counts = (await redisClient.pubsub('NUMSUB', ...channels)) as (string | number)[];
        return channels.map((_, i) => Number(counts[2 * i + 1]));
      }, [1]);
    } finally {
      redisClient.disconnect();
    }
    assert.deepEqual(await view(b, 'crowded'), []);
  });

  test('every way out ends exactly that session, with its reason', async () => {
    const observer = await join(a, 'exits', 'observer');
    const reasonOf = async (identity: string) => {
      const m = await observer.client.waitFor(isLeft(identity), 15_000);
      return m.type === 'participant.left' ? m.reason : undefined;
    };

    const leaver = await join(b, 'exits', 'leaver');
    leaver.client.send({ type: 'leave' });
    assert.equal(await reasonOf('leaver'), 'left');

    const closer = await join(b, 'exits', 'closer');
    closer.client.close();
    assert.equal(await reasonOf('closer'), 'disconnected');

    const silent = await join(b, 'exits', 'silent', { autoPong: false });
    assert.equal(await reasonOf('silent'), 'heartbeat-timeout');
    assert.equal((await silent.client.closed).code, CLOSE_CODES.heartbeatTimeout);

    const first = await join(b, 'exits', 'twin');
    await join(a, 'exits', 'twin');
    assert.equal(await reasonOf('twin'), 'replaced');
    const told = await first.client.waitFor((m) => m.type === 'leave');
    assert.equal(told.type === 'leave' && told.reason, 'replaced');
    assert.equal((await first.client.closed).code, CLOSE_CODES.replaced);

    const broken = await bot(b, 'exits', 'broken', true);
    await broken.peerConnections.publisher?.close();
    assert.equal(await reasonOf('broken'), 'peer-connection-failed');

    await waitForEqual(
      'node A to list only the observer and the newest twin',
      async () => (await view(a, 'exits')).map((p) => p.identity).sort(),
      ['observer', 'twin'],
    );
  });

  test('SIGTERM drains: clients are told to reconnect elsewhere', async () => {
    const c = await start({ region: 'sin', nodeId: 'node-c' });
    const observer = await join(a, 'drain', 'observer');
    const mover = await join(c, 'drain', 'mover');
    await c.stop('SIGTERM');
    const leave = await mover.client.waitFor((m) => m.type === 'leave');
    assert.equal(leave.type === 'leave' && leave.reason, 'draining');
    assert.ok(leave.type === 'leave' && leave.reconnect?.url, 'with a place to go');
    assert.equal((await mover.client.closed).code, CLOSE_CODES.draining);
    const left = await observer.client.waitFor(isLeft('mover'));
    assert.equal(left.type === 'participant.left' && left.reason, 'draining');
  });

  test('a SIGKILLed node leaves no ghost session', async () => {
    const d = await start({ region: 'fra', nodeId: 'node-d' });
    const observer = await join(a, 'ghost', 'observer');
    await join(d, 'ghost', 'ghost1');
    await join(d, 'ghost', 'ghost2');
    await observer.client.waitFor(
      (m) => m.type === 'participant.joined' && m.participant.identity === 'ghost2',
    );
    const t0 = Date.now();
    await d.stop('SIGKILL');
    for (const identity of ['ghost1', 'ghost2']) {
      const m = await observer.client.waitFor(isLeft(identity), TTL_MS + 10_000);
      assert.equal(m.type === 'participant.left' && m.reason, 'node-died');
    }
    console.log(
      `dead node's sessions reaped ${Date.now() - t0} ms after SIGKILL (TTL ${TTL_MS} ms)`,
    );
    await waitForEqual(
      'node A to list only the observer',
      async () => (await view(a, 'ghost')).map((p) => p.identity),
      ['observer'],
    );
  });

  test('a Redis outage does not stop media, refuses joins, and the state comes back', async () => {
    const pub = await bot(a, 'outage', 'pub', true);
    const sub = await bot(a, 'outage', 'sub', false);
    await sub.waitForPackets('pub', 'video', 50, 10_000);
    void pub;
    await redis.stop();
    const before = sub.stats().received.find((r) => r.kind === 'video')?.packets ?? 0;
    const refused = await sendJoin(a, 'outage', 'late');
    const e = await refused.waitFor((m) => m.type === 'error' && m.ref === 'j', 10_000);
    assert.equal(e.type === 'error' && e.code, 'SERVICE_UNAVAILABLE');
    // Media keeps flowing while Redis is away: 300 more video packets (some 2 s of video).
    const videoPackets = () => sub.stats().received.find((r) => r.kind === 'video')?.packets ?? 0;
    await waitUntil(
      `media to keep flowing during the outage (from ${before} packets)`,
      () => (videoPackets() > before + 300 ? true : undefined),
      15_000,
    );
    await redis.restart(); // empty, on the same port
    // Node A re-asserts its live sessions; a join on node B then lists them.
    const seen = await waitUntil(
      'the store has the sessions again',
      async () => {
        const probe = await sendJoin(b, 'outage', 'probe');
        const r = await probe.waitFor(
          (m) => (m.type === 'joined' || m.type === 'error') && m.ref === 'j',
          5_000,
        );
        probe.close();
        if (r.type !== 'joined') return undefined;
        const ids = r.participants.map((p) => p.identity).sort();
        return ids.length === 2 ? ids : undefined;
      },
      20_000,
    );
    assert.deepEqual(seen, ['pub', 'sub']);
  });
});
