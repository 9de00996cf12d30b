/**
 * The room service API and webhooks on a real Redis with two nodes (and a third that is
 * SIGKILLed): a call on node A carries out on node B, lists are cluster-wide, a delete ends
 * everyone everywhere, commands on Redis are signed, every webhook arrives once with a valid
 * signature, and every route of the OpenAPI document is called here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Bot } from '@geosfu/client/bot';
import {
  ROOM_SERVICE_ROUTES,
  RoomServiceClient,
  type RoomServiceRoute,
  type ServerMessage,
  SfuError,
  type WebhookEvent,
} from '@geosfu/common';
import { compileErrors, validate } from '@readme/openapi-parser';
import { Redis } from 'ioredis';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { devTokens, joinRaw } from '../helpers/rooms.js';
import { assertStays, waitUntil } from '../helpers/wait.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhooks.js';
import type { RawClient } from '../helpers/ws.js';

const TTL_MS = 3_000;
const CLI = fileURLToPath(new URL('../../packages/node/src/cli.ts', import.meta.url));
const WEBHOOK_KEY = 'test-webhook-key-0123456789abcdef0123';

/** The routes this file called, to check that every route of the document was. */
const called = new Set<string>();

describe('room service API across two nodes', () => {
  let redis: RedisServer;
  let hooks: WebhookReceiver;
  let a: NodeProcess;
  let b: NodeProcess;
  let directory: NodeProcess;
  const processes: NodeProcess[] = [];
  const clients: RawClient[] = [];
  const bots: Bot[] = [];
  /** A client of node `node`'s API that records which routes it called. */
  const api = async (node: NodeProcess) => {
    const token = await devTokens.mint({
      room: 'ops',
      identity: 'backend',
      grants: { roomCreate: true, roomList: true },
    });
    const client = new RoomServiceClient({ url: node.url, token });
    return new Proxy(client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        const route: Record<string, RoomServiceRoute> = { mutePublishedTrack: 'muteTrack' };
        return (...args: unknown[]) => {
          called.add(route[String(prop)] ?? String(prop));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  };
  const start = async (nodeId: string, region: string) => {
    const p = await startNode({
      nodeId,
      region,
      verbose: process.env.TEST_VERBOSE === '1',
      // Three processes compiling TypeScript at once on a loaded 2-core machine.
      startTimeoutMs: 90_000,
      args: ['--ping-interval-ms', '300', '--ping-timeout-ms', '1500', '--peer-timeout-ms', '3000'],
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: '750',
        SFU_WEBHOOK_URLS: hooks.url,
        SFU_WEBHOOK_KEY: WEBHOOK_KEY,
      },
    });
    processes.push(p);
    return p;
  };
  const join = (node: NodeProcess, room: string, identity: string) =>
    joinRaw(node.url, room, identity, clients);
  const bot = async (node: NodeProcess, room: string, identity: string, publish: boolean) => {
    const x = await Bot.connect({
      url: node.url,
      route: false,
      room,
      identity,
      hostAddresses: ['127.0.0.1'],
      ...(publish ? { publish: { video: true, audio: false } } : {}),
    });
    bots.push(x);
    return x;
  };
  /** The webhook events of `room` so far that match. */
  const hooked = (room: string, match: (e: WebhookEvent) => boolean = () => true) =>
    hooks.events.filter((e) => e.room === room && match(e));
  const expectCode = async (promise: Promise<unknown>, code: string) => {
    await assert.rejects(promise, (e: unknown) => e instanceof SfuError && e.code === code);
  };

  before(async () => {
    redis = await startRedis();
    hooks = await startWebhookReceiver(WEBHOOK_KEY);
    [a, b, directory] = await Promise.all([
      start('node-a', 'ams'),
      start('node-b', 'hcm'),
      startNode({
        role: 'directory',
        startTimeoutMs: 90_000,
        env: { REDIS_URL: redis.url, SFU_WEBHOOK_URLS: hooks.url, SFU_WEBHOOK_KEY: WEBHOOK_KEY },
      }),
    ]);
    processes.push(directory);
  });
  after(async () => {
    await Promise.allSettled(bots.map((x) => x.close()));
    for (const c of clients) c.close();
    await Promise.allSettled(processes.map((p) => p.stop('SIGKILL')));
    await hooks?.close();
    await redis?.stop();
  });

  test('the served OpenAPI document validates', async () => {
    const res = await fetch(`${b.url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    const document = (await res.json()) as Record<string, unknown>;
    called.add('openApi');
    const result = await validate(document as never);
    assert.ok(result.valid, result.valid ? '' : compileErrors(result));
  });

  test('a created room persists with its settings and lists on both nodes with both nodes’ participants', async () => {
    const apiA = await api(a);
    const created = await apiA.createRoom({
      name: 'standup',
      maxParticipants: 3,
      emptyTimeout: 60,
      metadata: '{"topic":"daily"}',
    });
    assert.equal(created.settings?.metadata, '{"topic":"daily"}');
    await waitUntil('room_started', () => (hooked('standup').length === 1 ? true : undefined));
    const alice = await join(a, 'standup', 'alice');
    const bob = await join(b, 'standup', 'bob');
    await alice.client.waitFor((m) => m.type === 'participant.joined');
    for (const node of [a, b]) {
      const view = await api(node);
      const room = await view.getRoom('standup');
      assert.deepEqual(room.participants.map((p) => [p.identity, p.nodeId, p.region]).sort(), [
        ['alice', 'node-a', 'ams'],
        ['bob', 'node-b', 'hcm'],
      ]);
      assert.equal(room.settings?.maxParticipants, 3);
      const listed = (await view.listRooms()).find((r) => r.name === 'standup');
      assert.equal(listed?.participants.length, 2);
      assert.equal((await view.listParticipants('standup')).length, 2);
      assert.equal((await view.getParticipant('standup', 'bob')).nodeId, 'node-b');
    }
    // The room's own limit, not the node's: a third joins, a fourth is refused.
    await join(b, 'standup', 'carol');
    await assert.rejects(join(a, 'standup', 'dave'), /ROOM_FULL/);
    // Data to chosen identities reaches only them, on their node.
    assert.equal(
      await apiA.sendData('standup', { payload: 'hi bob', topic: 't', identities: ['bob'] }),
      1,
    );
    const data = await bob.client.waitFor((m) => m.type === 'data');
    assert.equal(data.type === 'data' && data.payload, 'hi bob');
    assert.equal(await apiA.sendData('standup', { payload: 'all' }), 3);
    await alice.client.waitFor((m) => m.type === 'data' && m.payload === 'all');
    assert.ok(!alice.client.messages.some((m) => m.type === 'data' && m.payload === 'hi bob'));
  });

  test('a call on node A removes and re-permissions a participant on node B', async () => {
    const apiA = await api(a);
    const alice = await join(a, 'perm', 'alice');
    const bob = await join(b, 'perm', 'bob');
    await alice.client.waitFor((m) => m.type === 'participant.joined');
    const state = await apiA.updateParticipant('perm', 'bob', {
      permissions: { canPublish: false, canChat: false },
    });
    assert.deepEqual(state.permissions, { canPublish: false, canSubscribe: true, canChat: false });
    await bob.client.waitFor((m) => m.type === 'permissions' && !m.canPublish);
    bob.client.send({ type: 'publish', id: 'p1', sdp: 'v=0', tracks: [] });
    const denied = await bob.client.waitFor((m) => m.type === 'error' && m.ref === 'p1');
    assert.equal(denied.type === 'error' && denied.code, 'PERMISSION_DENIED');
    bob.client.send({ type: 'chat', id: 'c1', text: 'hello' });
    const muted = await bob.client.waitFor((m) => m.type === 'error' && m.ref === 'c1');
    assert.equal(muted.type === 'error' && muted.code, 'PERMISSION_DENIED');

    // Name and metadata: bob's client and alice's (on the other node) are told.
    const renamed = await apiA.updateParticipant('perm', 'bob', {
      name: 'Robert',
      metadata: '{"role":"guest"}',
    });
    assert.deepEqual([renamed.name, renamed.metadata], ['Robert', '{"role":"guest"}']);
    for (const c of [alice.client, bob.client]) {
      const m = await c.waitFor((x) => x.type === 'participant.updated');
      assert.equal(m.type === 'participant.updated' && m.participant.name, 'Robert');
    }
    await waitUntil('the store has the metadata', async () =>
      (await apiA.getParticipant('perm', 'bob')).metadata === '{"role":"guest"}' ? true : undefined,
    );
    await apiA.removeParticipant('perm', 'bob');
    const leave = await bob.client.waitFor((m) => m.type === 'leave');
    assert.equal(leave.type === 'leave' && leave.reason, 'removed');
    const left = await alice.client.waitFor((m) => m.type === 'participant.left');
    assert.equal(left.type === 'participant.left' && left.reason, 'removed');
    await expectCode(apiA.getParticipant('perm', 'bob'), 'NOT_FOUND');
    await waitUntil('participant_left removed', () =>
      hooked('perm', (e) => e.event === 'participant_left' && e.reason === 'removed').length === 1
        ? true
        : undefined,
    );
  });

  test('a mute on node A stops a track published on node B reaching its subscriber', async () => {
    const pub = await bot(b, 'media', 'pub', true);
    const sub = await bot(a, 'media', 'sub', false);
    await sub.waitForPackets('pub', 'video', 30, 20_000);
    const apiA = await api(a);
    const track = (await apiA.getParticipant('media', 'pub')).tracks.find(
      (t) => t.kind === 'video',
    );
    assert.ok(track, 'the room lists the published video');
    const ownMute = new Promise<ServerMessage>((resolve) => {
      const off = pub.signal.on('track.muted', (m) => {
        off();
        resolve(m);
      });
    });
    const info = await apiA.mutePublishedTrack('media', 'pub', track.trackId, true);
    assert.equal(info.muted, true);
    await ownMute; // the publisher itself is told
    await waitUntil('the room shows the track muted', async () =>
      (await apiA.getParticipant('media', 'pub')).tracks.some((t) => t.muted) ? true : undefined,
    );
    const packets = () =>
      sub.stats().received.find((r) => r.participant === 'pub' && r.kind === 'video')?.packets ?? 0;
    // What was in flight arrives; then nothing more.
    let last = packets();
    await waitUntil(
      'the subscriber to stop receiving',
      async () => {
        const now = packets();
        const still = now === last;
        last = now;
        return still ? true : undefined;
      },
      10_000,
      500,
    );
    const frozen = packets();
    await assertStays(
      'no packet reaches the subscriber while muted',
      () => packets() === frozen,
      1_500,
    );
    await apiA.mutePublishedTrack('media', 'pub', track.trackId, false);
    await sub.waitForPackets('pub', 'video', frozen + 20, 15_000);
    await pub.close();
    await waitUntil('track_unpublished', () =>
      hooked('media', (e) => e.event === 'track_unpublished').length === 1 ? true : undefined,
    );
  });

  test('delete disconnects everyone on every node; the room is gone until joined again', async () => {
    const apiB = await api(b);
    await apiB.createRoom({ name: 'closing', metadata: 'x' });
    const x = await join(a, 'closing', 'x');
    const y = await join(b, 'closing', 'y');
    await x.client.waitFor((m) => m.type === 'participant.joined');
    assert.equal(await apiB.deleteRoom('closing'), 2);
    for (const c of [x.client, y.client]) {
      const leave = await c.waitFor((m) => m.type === 'leave');
      assert.equal(leave.type === 'leave' && leave.reason, 'room-deleted');
      await c.closed;
    }
    await waitUntil('the room to be gone', async () => {
      try {
        await apiB.getRoom('closing');
        return undefined;
      } catch (error) {
        return error instanceof SfuError && error.code === 'NOT_FOUND' ? true : undefined;
      }
    });
    await waitUntil('room_finished', () =>
      hooked('closing', (e) => e.event === 'room_finished').length === 1 ? true : undefined,
    );
    // As documented: a later join creates it again, as a room without settings.
    await join(a, 'closing', 'z');
    assert.equal((await apiB.getRoom('closing')).settings, undefined);
  });

  test('forged and unsigned commands on Redis are rejected and counted', async () => {
    const r = new Redis(redis.url);
    try {
      const channel = 'sfu:roomcmd:node-b';
      const envelope = {
        v: 1,
        kind: 'command',
        id: 'AAAAAAAAAAAAAAAAAAAAAA',
        from: 'node-a',
        to: 'node-b',
        ts: Date.now(),
        body: { type: 'deleteRoom', room: 'standup' },
      };
      await r.publish(channel, JSON.stringify(envelope));
      await r.publish(channel, JSON.stringify({ ...envelope, sig: 'ab'.repeat(32) }));
      await r.publish(channel, 'not json');
      await waitUntil('rejections counted', async () =>
        (await metricValue(b.url, 'sfu_room_commands_rejected_total', { reason: 'signature' })) >=
          2 &&
        (await metricValue(b.url, 'sfu_room_commands_rejected_total', { reason: 'malformed' })) >= 1
          ? true
          : undefined,
      );
      const room = await (await api(a)).getRoom('standup');
      assert.equal(room.participants.length, 3, 'the forged delete did nothing');
    } finally {
      r.disconnect();
    }
  });

  test('sfu-directory and `sfu-node rooms` take the same calls', async () => {
    const viaDirectory = await api(directory);
    const standup = (await viaDirectory.listRooms()).find((r) => r.name === 'standup');
    assert.deepEqual(standup?.participants.map((p) => p.nodeId).sort(), [
      'node-a',
      'node-b',
      'node-b',
    ]);
    const cli = (...args: string[]) =>
      promisify(execFile)(
        process.execPath,
        ['--conditions=source', '--import', 'tsx', CLI, 'rooms', ...args, '--url', a.url, '--dev'],
        { timeout: 90_000 },
      );
    // carol is on node B; the CLI asks node A.
    const kicked = await cli('kick', 'standup', 'carol');
    assert.deepEqual(JSON.parse(kicked.stdout), { removed: 'carol' });
    await waitUntil('carol gone', async () =>
      (await viaDirectory.getRoom('standup')).participants.length === 2 ? true : undefined,
    );
    const got = JSON.parse((await cli('get', 'standup')).stdout) as { participants: unknown[] };
    assert.equal(got.participants.length, 2);
  });

  test('a receiver that answers 500 twice gets the event on the third try', async () => {
    hooks.failFirst((e) => e.room === 'retry' && e.event === 'room_started', 2);
    await (await api(a)).createRoom({ name: 'retry' });
    const event = await waitUntil(
      'the third try',
      () => hooked('retry', (e) => e.event === 'room_started')[0],
      15_000,
    );
    assert.equal(hooks.attempts.get(event.id), 3);
    assert.ok(
      (await metricValue(a.url, 'sfu_webhook_deliveries_total', { result: 'retried' })) >= 2,
    );
  });

  test('a SIGKILLed node’s participants leave with node-died, told once by the cluster', async () => {
    const c = await start('node-c', 'sin');
    await join(a, 'doomed', 'watcher');
    await join(c, 'doomed', 'victim');
    await waitUntil('victim joined', () =>
      hooked(
        'doomed',
        (e) => e.event === 'participant_joined' && e.participant?.identity === 'victim',
      ).length === 1
        ? true
        : undefined,
    );
    await c.stop('SIGKILL');
    const left = await waitUntil(
      'participant_left node-died',
      () =>
        hooked(
          'doomed',
          (e) => e.event === 'participant_left' && e.participant?.identity === 'victim',
        )[0],
      TTL_MS + 15_000,
    );
    assert.equal(left.reason, 'node-died');
    assert.notEqual(left.nodeId, 'node-c');
  });

  test('every webhook event arrived once, signed, for each fact', async () => {
    // Let retries and late duplicates (there must be none) arrive.
    await assertStays(
      'no event id delivered twice',
      () => new Set(hooks.events.map((e) => e.id)).size === hooks.events.length,
      1_000,
    );
    assert.equal(hooks.invalid, 0, 'every delivery verified');
    // A session's join and leave, a track's publish and unpublish: each is one fact, told
    // once. (Rooms may start again after they finished, and links be rebuilt.)
    const facts = hooks.events
      .filter((e) => e.event.startsWith('participant') || e.event.startsWith('track'))
      .map((e) => [e.event, e.room, e.participant?.sessionId, e.track?.trackId].join('|'));
    const counts = new Map<string, number>();
    for (const f of facts) counts.set(f, (counts.get(f) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no fact was told twice');
    const kinds = new Set(hooks.events.map((e) => e.event));
    for (const kind of [
      'room_started',
      'room_finished',
      'participant_joined',
      'participant_left',
      'track_published',
      'track_unpublished',
      'relay_opened',
    ])
      assert.ok(kinds.has(kind as WebhookEvent['event']), `a ${kind} event arrived`);
    const roomEvents = (room: string) =>
      hooked(room, (e) => e.event.startsWith('room')).map((e) => e.event);
    assert.deepEqual(roomEvents('standup'), ['room_started'], 'an API room started once');
    assert.deepEqual(roomEvents('closing'), ['room_started', 'room_finished', 'room_started']);
    assert.deepEqual(roomEvents('media'), ['room_started'], 'a joined room started once');
    // The media room: one join per participant, each from its own node.
    const joins = hooked('media', (e) => e.event === 'participant_joined');
    assert.deepEqual(joins.map((e) => [e.participant?.identity, e.nodeId]).sort(), [
      ['pub', 'node-b'],
      ['sub', 'node-a'],
    ]);
  });

  test('every route of the OpenAPI document was exercised', async () => {
    const document = (await (await fetch(`${a.url}/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    const operations = Object.values(document.paths).flatMap((item) =>
      Object.values(item).map((op) => op.operationId),
    );
    assert.deepEqual(
      operations.filter((op) => !called.has(op)),
      [],
      'routes no test called',
    );
    assert.equal(operations.length, Object.keys(ROOM_SERVICE_ROUTES).length + 1);
  });
});

describe('room service API on a single node (no Redis)', () => {
  let node: NodeProcess;
  let hooks: WebhookReceiver;
  const clients: RawClient[] = [];
  const call = async (
    path: string,
    init: RequestInit & { grants?: object; room?: string } = {},
  ) => {
    const token = await devTokens.mint({
      room: init.room ?? 'ops',
      identity: 'backend',
      grants: init.grants ?? { roomCreate: true, roomList: true },
    });
    const res = await fetch(`${node.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    hooks = await startWebhookReceiver(WEBHOOK_KEY);
    node = await startNode({
      startTimeoutMs: 90_000,
      env: { SFU_WEBHOOK_URLS: hooks.url, SFU_WEBHOOK_KEY: WEBHOOK_KEY },
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await node?.stop('SIGKILL');
    await hooks?.close();
  });

  test('grants, bad bodies and limits get coded errors; an empty API room expires', async () => {
    const denied = await call('/v1/rooms', { grants: { roomList: true } });
    assert.equal(denied.status, 200, 'roomList may list');
    const noCreate = await call('/v1/rooms', {
      method: 'POST',
      body: JSON.stringify({ name: 'x' }),
      grants: { roomList: true },
    });
    assert.equal(noCreate.status, 403);
    assert.deepEqual(Object.keys(noCreate.json.error as object), ['code', 'message']);
    assert.equal((noCreate.json.error as { code: string }).code, 'PERMISSION_DENIED');
    const bad = await call('/v1/rooms', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', maxParticipants: 0, extra: 1 }),
    });
    assert.equal((bad.json.error as { code: string }).code, 'BAD_REQUEST');
    const created = await call('/v1/rooms', {
      method: 'POST',
      body: JSON.stringify({ name: 'tiny', maxParticipants: 1, emptyTimeout: 2 }),
    });
    assert.equal(created.status, 201);
    const first = await joinRaw(node.url, 'tiny', 'one', clients);
    await assert.rejects(joinRaw(node.url, 'tiny', 'two', clients), /ROOM_FULL/);
    // roomAdmin is for the token's own room only.
    const elsewhere = await call('/v1/rooms/tiny/participants/one', {
      method: 'DELETE',
      grants: { roomAdmin: true },
      room: 'other',
    });
    assert.equal(elsewhere.status, 403);
    const kicked = await call('/v1/rooms/tiny/participants/one', {
      method: 'DELETE',
      grants: { roomAdmin: true },
      room: 'tiny',
    });
    assert.deepEqual(kicked.json, { delivered: 1 });
    const leave = await first.client.waitFor((m) => m.type === 'leave');
    assert.equal(leave.type === 'leave' && leave.reason, 'removed');
    // Kept while empty for its emptyTimeout (2 s), then gone.
    assert.equal((await call('/v1/rooms/tiny')).status, 200);
    await waitUntil(
      'the empty room to expire',
      async () => ((await call('/v1/rooms/tiny')).status === 404 ? true : undefined),
      15_000,
      250,
    );
    // A room nobody joined expires too; one deleted while empty finishes once, not again
    // when its empty timeout would have passed.
    for (const name of ['unused', 'dropped'])
      await call('/v1/rooms', { method: 'POST', body: JSON.stringify({ name, emptyTimeout: 1 }) });
    assert.deepEqual((await call('/v1/rooms/dropped', { method: 'DELETE' })).json, {
      delivered: 0,
    });
    const finished = (room: string) =>
      hooks.events.filter((e) => e.room === room && e.event === 'room_finished').length;
    await waitUntil(
      'room_finished of the expired rooms',
      () => (finished('tiny') === 1 && finished('unused') === 1 ? true : undefined),
      15_000,
    );
    await assertStays('dropped finished once', () => finished('dropped') === 1, 2_500);
  });
});
