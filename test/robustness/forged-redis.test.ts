/**
 * A neighbour with write access to Redis (no cluster secret) forges cluster state: room
 * events (a `left` that kicks, a `chat` as someone else, a `joined` ghost), a node record and
 * an `up` message that would take over routing, a key-expiry notification of a live node,
 * 100 session records that would fill a room; and replays or tampers with real signed
 * events. Each must change nothing but `sfu_cluster_messages_rejected_total`, by exactly the
 * number of forgeries. Also: sessions of a node missing from the registry (signed, so
 * authentic: a node that died while no survivor saw it) are removed after the grace.
 *
 * Two real node processes, a real redis-server, raw signalling clients; the forger is a
 * plain ioredis client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ClusterStateCodec,
  DEV_CLUSTER_SECRET,
  type ParticipantInfo,
  type ServerMessage,
} from '@geosfu/common';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { joinRaw, roomView, devTokens as tokens } from '../helpers/rooms.js';
import { waitUntil } from '../helpers/wait.js';
import type { RawClient } from '../helpers/ws.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const MAX_PARTICIPANTS = 10;
const REJECTED = 'sfu_cluster_messages_rejected_total';

interface Joined {
  client: RawClient;
  sessionId: string;
}

describe('forged Redis traffic changes nothing but a counter', () => {
  let redis: RedisServer;
  let forger: Redis;
  let a: NodeProcess;
  let b: NodeProcess;
  let alice: Joined;
  let bob: Joined;
  const processes: NodeProcess[] = [];
  const clients: RawClient[] = [];
  const subscribers: Redis[] = [];

  const start = async (region: string, nodeId: string) => {
    const p = await startNode({
      region,
      nodeId,
      verbose: process.env.TEST_VERBOSE === '1',
      args: ['--max-participants', String(MAX_PARTICIPANTS)],
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
      },
    });
    processes.push(p);
    return p;
  };
  const join = async (node: NodeProcess, room: string, identity: string): Promise<Joined> => {
    const { client, joined } = await joinRaw(node.url, room, identity, clients);
    return { client, sessionId: joined.sessionId };
  };
  const view = (node: NodeProcess, room: string) => roomView(node.url, room);
  const rejected = (node: NodeProcess, labels: Record<string, string> = {}) =>
    metricValue(node.metricsUrl, REJECTED, labels);
  /** Waits until `node`'s counter reads exactly `value` (it must never pass it). */
  const counterReaches = (node: NodeProcess, labels: Record<string, string>, value: number) =>
    waitUntil(`${node.nodeId} ${REJECTED}${JSON.stringify(labels)} = ${value}`, async () => {
      const now = await rejected(node, labels);
      assert.ok(now <= value, `${node.nodeId} counted ${now} > ${value} rejections`);
      return now === value ? now : undefined;
    });
  /**
   * A real chat from `from` that `to` receives: events of a room are delivered in order, so
   * once it has arrived, every forgery published before it was handled by `to`'s node.
   */
  const realChat = async (from: Joined, to: Joined, text: string) => {
    from.client.send({ type: 'chat', text });
    await to.client.waitFor((m) => m.type === 'chat' && m.text === text, 10_000);
  };
  /** The session record of `sessionId` as Redis holds it (the forger can read it too). */
  const storedSession = async (room: string, sessionId: string) => {
    const raw = await forger.hget(`sfu:room:${room}:sessions`, sessionId);
    assert.ok(raw, `session ${sessionId} is in Redis`);
    return (JSON.parse(raw) as { d: Record<string, unknown> }).d;
  };
  /**
   * Each tick of a node writes its record, then reads every record (and handles what it
   * found): two new writes of `node`'s record mean at least one whole tick in between.
   */
  const reconciled = async (node: NodeProcess) => {
    const stamp = async () => {
      const raw = JSON.parse((await forger.get(`sfu:node:${node.nodeId}`)) ?? '{}');
      return (raw.d ?? raw).updatedAt as number;
    };
    const writes = new Set([await stamp()]);
    await waitUntil(`two more heartbeats of ${node.nodeId}`, async () => {
      writes.add(await stamp());
      return writes.size >= 3 ? true : undefined;
    });
  };
  const ids = (list: ParticipantInfo[]) => list.map((p) => p.identity).sort();
  const never = (client: RawClient, what: string, match: (m: ServerMessage) => boolean) =>
    assert.equal(
      client.messages.filter(match).length,
      0,
      `${what}: ${JSON.stringify(client.messages.filter(match))}`,
    );

  before(async () => {
    redis = await startRedis();
    forger = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    a = await start('ams', 'node-a');
    b = await start('hcm', 'node-b');
    alice = await join(a, 'f', 'alice');
    bob = await join(b, 'f', 'bob');
    await alice.client.waitFor(
      (m) => m.type === 'participant.joined' && m.participant.identity === 'bob',
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.allSettled(processes.map((p) => p.stop('SIGKILL')));
    for (const s of subscribers) s.disconnect();
    forger?.disconnect();
    await redis?.stop();
  });

  test('a forged left, chat and joined on the room channel change nothing', async () => {
    const labels = { kind: 'room-event' };
    const [baseA, baseB] = [await rejected(a, labels), await rejected(b, labels)];
    const bobRecord = await storedSession('f', bob.sessionId);
    const channel = 'sfu:room:f:events';
    const forged = [
      // Would end bob's session on node B (it looks like a newer session replaced his).
      { type: 'left', origin: 'node-a', session: bobRecord, reason: 'replaced' },
      {
        type: 'chat',
        origin: 'node-b',
        from: { sessionId: bob.sessionId, identity: 'bob', name: 'bob' },
        text: 'forged chat',
        ts: Date.now(),
      },
      {
        type: 'joined',
        origin: 'node-x',
        session: {
          ...bobRecord,
          sessionId: 'ghost-session',
          identity: 'ghost',
          name: 'ghost',
          nodeId: 'node-x',
        },
      },
    ];
    for (const event of forged) await forger.publish(channel, JSON.stringify(event));
    // The same forgeries in an envelope with a made-up signature.
    await forger.publish(
      channel,
      JSON.stringify({
        v: 1,
        id: 'A'.repeat(22),
        ts: Date.now(),
        d: forged[0],
        sig: '0'.repeat(64),
      }),
    );
    const n = forged.length + 1;
    await realChat(bob, alice, 'real from B');
    await realChat(alice, bob, 'real from A');
    await counterReaches(a, labels, baseA + n);
    await counterReaches(b, labels, baseB + n);

    for (const [who, client] of [
      ['alice', alice.client],
      ['bob', bob.client],
    ] as const) {
      never(
        client,
        `${who} saw a forged chat`,
        (m) => m.type === 'chat' && m.text === 'forged chat',
      );
      never(
        client,
        `${who} saw the ghost`,
        (m) => m.type === 'participant.joined' && m.participant.identity === 'ghost',
      );
      never(client, `${who} saw a forged left`, (m) => m.type === 'participant.left');
    }
    assert.equal(bob.client.ws.readyState, WebSocket.OPEN, 'bob was not kicked');
    assert.deepEqual(ids(await view(a, 'f')), ['alice', 'bob']);
    assert.deepEqual(ids(await view(b, 'f')), ['alice', 'bob']);
  });

  test('a replayed or tampered real event is rejected', async () => {
    const labels = { kind: 'room-event' };
    const channel = 'sfu:room:f:events';
    const sub = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    subscribers.push(sub);
    await sub.subscribe(channel);
    const captured = new Promise<string>((resolve) => {
      sub.on('message', (_channel: string, message: string) => {
        if (message.includes('to be replayed')) resolve(message);
      });
    });
    await realChat(alice, bob, 'to be replayed');
    const original = await captured;
    const [baseA, baseB] = [await rejected(a, labels), await rejected(b, labels)];
    const [dupA, dupB] = [
      await rejected(a, { ...labels, reason: 'duplicate' }),
      await rejected(b, { ...labels, reason: 'duplicate' }),
    ];

    await forger.publish(channel, original); // replayed as it was
    const tampered = JSON.parse(original) as { d: { text: string } };
    tampered.d.text = 'tampered';
    await forger.publish(channel, JSON.stringify(tampered));
    await realChat(bob, alice, 'after the replay, from B');
    await realChat(alice, bob, 'after the replay, from A');
    await counterReaches(a, labels, baseA + 2);
    await counterReaches(b, labels, baseB + 2);
    assert.equal(await rejected(a, { ...labels, reason: 'duplicate' }), dupA + 1);
    assert.equal(await rejected(b, { ...labels, reason: 'duplicate' }), dupB + 1);
    const seen = bob.client.messages.filter(
      (m) => m.type === 'chat' && m.text === 'to be replayed',
    );
    assert.equal(seen.length, 1, 'bob got the real chat once');
    never(
      bob.client,
      'bob saw the tampered chat',
      (m) => m.type === 'chat' && m.text === 'tampered',
    );
  });

  test('a forged node record and up message do not take over /v1/route', async () => {
    const route = async (node: NodeProcess) => {
      const token = await tokens.mint({ room: 'r', identity: 'router' });
      const res = await fetch(`${node.url}/v1/route?room=r`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200);
      return (await res.json()) as { nodeId: string; url: string };
    };
    // Without GeoIP each node sends callers to its default region, its own: each answers
    // with itself. A forged copy of each node's record, but idle and huge, would win.
    const before = { a: (await route(a)).nodeId, b: (await route(b)).nodeId };
    assert.deepEqual(before, { a: 'node-a', b: 'node-b' });
    const evil = async (id: string) => {
      // The forger copies what it reads (the payload of the envelope, or plain JSON).
      const real = JSON.parse((await forger.get(`sfu:node:${id}`)) ?? '{}');
      return {
        ...(real.d ?? real),
        id: `evil-${id}`,
        url: 'http://evil.test',
        signalUrl: 'ws://evil.test/v1/signal',
        capacity: 100_000,
        load: { participants: 0, publishedTracks: 0, cpu: 0, forwardedBitrate: 0 },
        updatedAt: Date.now(),
      };
    };
    const counts = async (node: NodeProcess) => ({
      record: await rejected(node, { kind: 'node-record' }),
      message: await rejected(node, { kind: 'node-message' }),
    });
    const [baseA, baseB] = [await counts(a), await counts(b)];
    for (const id of ['node-a', 'node-b']) {
      const record = await evil(id);
      await forger.set(`sfu:node:evil-${id}`, JSON.stringify(record), 'PX', 60_000);
      await forger.publish('sfu:nodes', JSON.stringify({ type: 'up', node: record }));
    }
    for (const [node, base] of [
      [a, baseA],
      [b, baseB],
    ] as const) {
      // The records are read by every reconcile (each heartbeat) but counted once.
      await counterReaches(node, { kind: 'node-record' }, base.record + 2);
      await counterReaches(node, { kind: 'node-message' }, base.message + 2);
    }
    assert.deepEqual({ a: (await route(a)).nodeId, b: (await route(b)).nodeId }, before);
    // A few reconciles later still counted once, and still the real node.
    await reconciled(a);
    assert.deepEqual(await counts(a), { record: baseA.record + 2, message: baseA.message + 2 });
    assert.deepEqual({ a: (await route(a)).nodeId, b: (await route(b)).nodeId }, before);
    await forger.del('sfu:node:evil-node-a', 'sfu:node:evil-node-b');
  });

  test('a fake expiry of a live node reaps nothing', async () => {
    const labels = { kind: 'expiry', reason: 'node-alive' };
    const base = await rejected(a, labels);
    // What Redis would send when node B's record expired: every node used to reap B.
    await forger.publish('__keyevent@0__:expired', 'sfu:node:node-b');
    await counterReaches(a, labels, base + 1);
    // A reap would publish `left` on the room channel: a real event after it, and a whole
    // registry tick, and still nothing.
    await reconciled(a);
    await realChat(bob, alice, 'B is still here');
    never(alice.client, 'alice saw bob leave', (m) => m.type === 'participant.left');
    assert.deepEqual(ids(await view(a, 'f')), ['alice', 'bob']);
    assert.ok(await forger.hexists('sfu:room:f:sessions', bob.sessionId));
  });

  test('100 forged session records do not fill a room, and are removed', async () => {
    const key = 'sfu:room:full:sessions';
    const sessions = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [
        `junk-${i}`,
        JSON.stringify({
          sessionId: `junk-${i}`,
          identity: `junk-${i}`,
          name: 'junk',
          nodeId: 'node-x',
          region: 'ams',
          joinedAt: Date.now(),
          tracks: [],
        }),
      ]),
    );
    const total = async () =>
      (await rejected(a, { kind: 'session' })) + (await rejected(b, { kind: 'session' }));
    const base = await total();
    await forger.hset(key, sessions);
    // Before the fix: ROOM_FULL, for every join, forever.
    const carol = await join(b, 'full', 'carol');
    assert.deepEqual(ids(await view(b, 'full')), ['carol']);
    await waitUntil(
      'the junk removed',
      async () => ((await forger.hlen(key)) === 1 ? true : undefined),
      10_000,
    );
    assert.ok(await forger.hexists(key, carol.sessionId));
    // Counted once in the cluster: by the node whose write removed them.
    await waitUntil('100 counted', async () => ((await total()) === base + 100 ? true : undefined));
  });

  test('sessions of a node missing from the registry are removed after the grace', async () => {
    // Authentic (signed with the cluster secret), like those of a node that died while no
    // survivor was there to reap it: believed, until the node stays missing for 2 TTLs.
    const codec = new ClusterStateCodec(DEV_CLUSTER_SECRET);
    const key = 'sfu:room:f:sessions';
    const orphans = ['o1', 'o2', 'o3'].map((id) => ({
      sessionId: `orphan-${id}`,
      identity: `orphan-${id}`,
      name: id,
      nodeId: 'node-gone',
      region: 'sin',
      joinedAt: Date.now(),
      tracks: [],
    }));
    const t0 = Date.now();
    for (const s of orphans) {
      await forger.hset(key, s.sessionId, codec.seal('session', `${key}\n${s.sessionId}`, s));
      const joined = { type: 'joined', origin: 'node-gone', session: s };
      await forger.publish(
        'sfu:room:f:events',
        codec.seal('room-event', 'sfu:room:f:events', joined),
      );
    }
    await alice.client.waitFor(
      (m) => m.type === 'participant.joined' && m.participant.identity === 'orphan-o3',
    );
    for (const s of orphans) {
      const left = await alice.client.waitFor(
        (m) => m.type === 'participant.left' && m.identity === s.identity,
        2 * TTL_MS + 15_000,
      );
      assert.equal(left.type === 'participant.left' && left.reason, 'node-died');
    }
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= TTL_MS, `removed after ${elapsed} ms, inside the registry TTL`);
    for (const s of orphans) assert.equal(await forger.hexists(key, s.sessionId), 0);
    assert.deepEqual(ids(await view(a, 'f')), ['alice', 'bob']);
    const reaped =
      (await metricValue(a.metricsUrl, 'sfu_orphan_sessions_reaped_total')) +
      (await metricValue(b.metricsUrl, 'sfu_orphan_sessions_reaped_total'));
    assert.equal(reaped, 3);
  });
});
