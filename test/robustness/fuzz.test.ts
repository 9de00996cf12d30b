/**
 * The fuzz probe of issue 20 as a suite. Thousands of fuzzed signalling frames (random JSON,
 * mutated valid messages, wrong types, huge and deep values, binary) over many sockets, and
 * fuzzed HTTP requests on every route (bodies over the limit, unknown encodings, a gzip bomb,
 * malformed percent-encodings, random bytes), while a real call runs on the same node: every
 * reply is a coded error that is no INTERNAL (or a documented 1008/1009 close), every HTTP
 * client error a 4xx with a code, the call loses nothing (its packet counts keep rising, no
 * participant left), and the node logs no error-level line and stays healthy.
 * Seeded (FUZZ_SEED overrides it), so a failure can be replayed. signal-errors.test.ts covers
 * each kind of bad input once; this file throws them at the node by the thousand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Bot } from '@geosfu/client/bot';
import {
  CLOSE_CODES,
  DEV_API_KEY,
  DEV_API_SECRET,
  isErrorCode,
  LIMITS,
  type ServerMessage,
  seededRandom,
  TokenService,
} from '@geosfu/common';
import { logsFlushed, rawRequest } from '../helpers/http.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { waitUntil } from '../helpers/wait.js';
import { rawClient } from '../helpers/ws.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_2026);
const SOCKETS = 150;
const FRAMES_PER_SOCKET = 20;
const PARALLEL_SOCKETS = 10;
const HTTP_REQUESTS = 600;
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

type Random = () => number;
const pick = <T>(r: Random, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
const int = (r: Random, max: number) => Math.floor(r() * max);

/** A random JSON value, at most `depth` levels deep. */
function randomValue(r: Random, depth = 3): unknown {
  switch (int(r, depth > 0 ? 8 : 5)) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return pick(r, [0, -1, 1e308, -0, 2 ** 53, 3.14, Number.MAX_SAFE_INTEGER]);
    case 3:
      return pick(r, ['', 'x', 'join', 'v=0', '\u0000', '\ud800', '💥', 'a'.repeat(int(r, 300))]);
    case 4:
      return String.fromCharCode(...Array.from({ length: int(r, 40) }, () => int(r, 0xffff)));
    case 5:
      return Array.from({ length: int(r, 4) }, () => randomValue(r, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(r, 5); i > 0; i--)
        o[
          pick(r, [
            'type',
            'id',
            'token',
            'sdp',
            'tracks',
            'text',
            'target',
            'ts',
            '__proto__',
            'constructor',
            'x',
          ])
        ] = randomValue(r, depth - 1);
      return o;
    }
  }
}

const TYPES = [
  'join',
  'publish',
  'unpublish',
  'subscriber.answer',
  'trickle',
  'mute',
  'chat',
  'stats',
  'ping',
  'leave',
];

/** A valid message of each kind, to mutate. */
function validMessages(token: string): Record<string, unknown>[] {
  return [
    { type: 'join', id: 'j', token },
    { type: 'join', id: 'j', token, autoSubscribe: false },
    {
      type: 'publish',
      id: 'p',
      sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n',
      tracks: [{ mid: '0', kind: 'video', source: 'camera' }],
    },
    { type: 'unpublish', id: 'u', trackId: 'TR_x' },
    { type: 'subscriber.answer', sdp: 'v=0\r\n' },
    {
      type: 'trickle',
      target: 'publisher',
      candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' },
    },
    { type: 'mute', id: 'm', trackId: 'TR_x', muted: true },
    { type: 'chat', id: 'c', text: 'hello' },
    { type: 'stats', id: 's' },
    { type: 'ping', ts: 1 },
  ];
}

/** Changes one thing of a valid message: a field's type, a field dropped, a wrong type name. */
function mutate(r: Random, message: Record<string, unknown>): Record<string, unknown> {
  const m = { ...message };
  const keys = Object.keys(m);
  switch (int(r, 5)) {
    case 0:
      m[pick(r, keys)] = randomValue(r, 2);
      break;
    case 1:
      delete m[pick(r, keys)];
      break;
    case 2:
      m.type = pick(r, TYPES);
      break;
    case 3:
      m[pick(r, ['extra', 'tracks', 'candidate', 'target'])] = randomValue(r, 3);
      break;
    default:
      m.id = pick(r, ['', 'x'.repeat(LIMITS.maxIdLength + 1), 42, null, ['a']]);
  }
  return m;
}

/** One fuzzed frame: a string (a text frame) or a Buffer (a binary frame). */
function frame(r: Random, token: string): string | Buffer {
  switch (int(r, 10)) {
    case 0:
      return JSON.stringify(randomValue(r, 4));
    case 1:
      return Buffer.from(Array.from({ length: int(r, 200) + 1 }, () => int(r, 256)));
    case 2: // broken JSON
      return JSON.stringify(mutate(r, pick(r, validMessages(token)))).slice(0, -1 - int(r, 10));
    case 3: // over the message limit, under the frame limit: MESSAGE_TOO_LARGE
      return JSON.stringify({
        type: 'chat',
        text: 'x'.repeat(LIMITS.maxMessageBytes + int(r, 1000)),
      });
    case 4: {
      // deep: as deep as the message limit allows
      const depth = 2_000 + int(r, 20_000);
      return `{"type":"chat","text":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    }
    case 5:
      return `{"type":"${pick(r, TYPES)}","id":"d",${'"k":1,'.repeat(int(r, 5_000))}"z":0}`;
    default:
      return JSON.stringify(mutate(r, pick(r, validMessages(token))));
  }
}

describe('fuzzed signalling and HTTP while a call runs', { timeout: 120_000 }, () => {
  let node: NodeProcess;
  let alice: Bot;
  let bob: Bot;
  const left: string[] = [];

  before(async () => {
    node = await startNode();
    const common = { url: node.url, route: false, room: 'call', hostAddresses: ['127.0.0.1'] };
    alice = await Bot.connect({
      ...common,
      identity: 'alice',
      publish: { video: true, audio: true, bitrate: 200_000 },
    });
    bob = await Bot.connect({ ...common, identity: 'bob' });
    for (const b of [alice, bob])
      b.on('participantLeft', (l) => left.push(`${l.identity}: ${l.reason}`));
    await bob.waitForPackets('alice', 'video', 30, 15_000);
  });
  after(async () => {
    await Promise.allSettled([alice?.close(), bob?.close()]);
    await node?.stop();
  });

  const received = () => {
    const streams = bob.stats().received.filter((s) => s.participant === 'alice');
    return Object.fromEntries(streams.map((s) => [s.kind, s.packets]));
  };
  /** The call still flows: each of bob's streams from alice grew past `before`. */
  const callFlows = async (before: Record<string, number>) => {
    for (const kind of ['audio', 'video'] as const)
      await bob.waitForPackets('alice', kind, (before[kind] ?? 0) + 20, 15_000);
  };

  test('fuzzed signalling frames get coded errors or a documented close', async () => {
    const before = received();
    const replies: ServerMessage[] = [];
    const closes: number[] = [];
    let frames = 0;
    let next = 0;
    const runSocket = async (n: number) => {
      // Each socket gets its own valid token for a room of its own, so a mutated join may
      // join: the fuzz then goes on inside a session.
      const token = await tokens.mint({ room: `fuzz-${n % 7}`, identity: `fuzzer-${n}` });
      // One generator per socket: the frames do not depend on how the sockets interleave.
      const r = seededRandom(SEED + n);
      const c = await rawClient(node.url);
      for (let i = 0; i < FRAMES_PER_SOCKET && c.ws.readyState === c.ws.OPEN; i++) {
        c.send(frame(r, token));
        frames++;
      }
      // Wait for the node to deal with every frame: a ping is answered after what came first
      // arrived, or the socket was closed for abuse.
      if (c.ws.readyState === c.ws.OPEN) {
        c.send({ type: 'ping', ts: -n });
        await Promise.race([
          c.waitFor((m) => m.type === 'pong' && m.ts === -n, 10_000),
          c.closed,
        ]).catch(() => undefined);
      }
      c.close();
      const { code } = await c.closed;
      replies.push(...c.messages);
      if (code !== 1005 && code !== 1006) closes.push(code); // 1005/1006: our own terminate
    };
    await Promise.all(
      Array.from({ length: PARALLEL_SOCKETS }, async () => {
        while (next < SOCKETS) await runSocket(next++);
      }),
    );

    const errors = replies.filter((m) => m.type === 'error');
    const internal = errors.filter(
      (m) => m.type === 'error' && (m.code === 'INTERNAL' || !isErrorCode(m.code)),
    );
    assert.deepEqual(internal, [], 'no INTERNAL and no unknown code');
    // 1008 for abuse, 1009 for a frame over 1 MiB; 1000/4004 when a fuzzed `leave` got through.
    const documented: number[] = [
      CLOSE_CODES.policyViolation,
      CLOSE_CODES.tooBig,
      CLOSE_CODES.normal,
      CLOSE_CODES.left,
    ];
    for (const code of closes)
      assert.ok(documented.includes(code), `close code ${code} is documented`);
    assert.ok(errors.length > frames / 4, `${errors.length} errors for ${frames} frames`);
    const byCode = new Map<string, number>();
    for (const e of errors)
      if (e.type === 'error') byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
    console.log(
      `fuzz: ${frames} frames over ${SOCKETS} sockets (seed ${SEED}): ${errors.length} errors ${JSON.stringify(Object.fromEntries(byCode))}, ${closes.length} closes by the node`,
    );

    await callFlows(before);
    assert.deepEqual(left, [], 'nobody left the call');
    assert.equal((await rawRequest(node.url, { path: '/healthz' })).status, 200);
    await logsFlushed(node);
    assert.deepEqual(
      node.logs.filter((l) => Number(l.level) >= 50),
      [],
      'no error-level line',
    );
  });

  test('fuzzed HTTP requests get a 4xx with a code, on every route', async () => {
    const r = seededRandom(SEED + 1);
    const before = received();
    const admin = await tokens.mint({ room: 'x', identity: 'ops', grants: { admin: false } });
    const routes = [
      '/v1/admin/drain',
      '/v1/admin/rooms/r',
      '/v1/dev/token',
      '/v1/route?room=r',
      '/v1/rooms',
      '/v1/rooms/r/participants/alice/mute',
      '/healthz',
      '/readyz',
      '/metrics',
      '/',
      '/app.js',
      '/v1/signal',
      '/nope',
    ];
    const badPaths = [
      '/v1/admin/rooms/%E0%A4%A',
      '/v1/admin/rooms/%',
      '/%zz',
      '/v1/route?room=%E0%A4',
      '/v1/admin/rooms/%00',
      '/v1/rooms/%E0%A4%A/data',
      `/${'a'.repeat(4_000)}`,
      '/..%2f..%2fetc/passwd',
    ];
    const bomb = gzipSync(Buffer.alloc(4 * 1024 * 1024, 0x20));
    let refused = 0;
    for (let i = 0; i < HTTP_REQUESTS; i++) {
      const path = r() < 0.25 ? pick(r, badPaths) : pick(r, routes);
      const method = pick(r, ['GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
      const headers: Record<string, string> = {};
      let body: Buffer | string | undefined;
      switch (int(r, 7)) {
        case 0:
          body = JSON.stringify({ pad: 'x'.repeat(LIMITS.maxHttpBodyBytes + int(r, 50_000)) });
          headers['content-type'] = 'application/json';
          break;
        case 1:
          body = '{}';
          headers['content-type'] = 'application/json';
          headers['content-encoding'] = pick(r, [
            'x-zstd',
            'compress',
            'gzip, x-foo',
            'identity;q=0',
            '*',
          ]);
          break;
        case 2:
          body = bomb;
          headers['content-type'] = 'application/json';
          headers['content-encoding'] = 'gzip';
          break;
        case 3:
          body = Buffer.from(Array.from({ length: int(r, 2_000) }, () => int(r, 256)));
          headers['content-type'] = pick(r, [
            'application/json',
            'application/json; charset=utf-16',
            'text/plain',
            'application/x-www-form-urlencoded',
          ]);
          if (r() < 0.3) headers['content-encoding'] = pick(r, ['gzip', 'deflate', 'br']);
          break;
        case 4:
          body = JSON.stringify(randomValue(r, 4));
          headers['content-type'] = 'application/json';
          break;
        default:
          break;
      }
      if (r() < 0.3)
        headers.authorization = pick(r, [`Bearer ${admin}`, 'Bearer x.y.z', 'Basic abc', 'Bearer']);
      const res = await rawRequest(node.url, {
        method,
        path,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const what = `${method} ${path.slice(0, 60)} ${JSON.stringify(headers).slice(0, 200)}: ${res.status} ${res.body.slice(0, 200)}`;
      assert.ok(res.status < 500, what);
      if (res.status >= 400 && method !== 'OPTIONS' && !path.startsWith('/v1/signal')) {
        assert.ok(res.error && isErrorCode(res.error.code), `a coded error: ${what}`);
        refused++;
      }
    }
    console.log(
      `fuzz: ${HTTP_REQUESTS} HTTP requests (seed ${SEED + 1}), ${refused} refused with a code`,
    );
    assert.ok(refused > HTTP_REQUESTS / 3);
    await callFlows(before);
    assert.deepEqual(left, [], 'nobody left the call');
    await logsFlushed(node);
    assert.equal(node.logs.filter((l) => Number(l.level) >= 50).length, 0, 'no error-level line');
    await waitUntil('the node still healthy', async () =>
      (await rawRequest(node.url, { path: '/readyz' })).status === 200 ? true : undefined,
    );
  });
});
