/**
 * A client's mistakes on the HTTP API are answered 4xx with a code and logged at warn without
 * a stack, on every route of a node and of `sfu-directory`: a body over the limit (also on
 * `POST /v1/admin/drain`, before any token check), an unknown Content-Encoding, a gzip bomb,
 * a body that does not inflate, bad JSON, a path whose percent-encoding does not decode.
 * Error-level lines are for faults of ours only, so nobody can flood a node's log with them.
 * A production node does not serve the demo page's source map.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { LIMITS } from '@geosfu/common';
import { logsFlushed, rawRequest } from '../helpers/http.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const API = { SFU_API_KEY: 'prodkey', SFU_API_SECRET: 'a-production-secret-of-32-chars-or-more' };

const json = { 'content-type': 'application/json' };
const tooBig = JSON.stringify({ pad: 'x'.repeat(LIMITS.maxHttpBodyBytes + 100) });
// 64 MiB of zeros gzip to ~64 KB... too big to send; 8 MiB of a JSON string gzip to ~8 KB.
const bomb = gzipSync(Buffer.from(`{"pad":"${'0'.repeat(8 * 1024 * 1024)}"}`));

/** Each bad request and the code it must get. */
const CASES: {
  name: string;
  headers: Record<string, string>;
  body: Buffer | string;
  status: number;
  code: string;
}[] = [
  {
    name: 'body over the limit',
    headers: json,
    body: tooBig,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'unknown Content-Encoding',
    headers: { ...json, 'content-encoding': 'x-zstd-special' },
    body: '{}',
    status: 415,
    code: 'UNSUPPORTED_ENCODING',
  },
  {
    name: 'gzip bomb',
    headers: { ...json, 'content-encoding': 'gzip' },
    body: bomb,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'gzip that does not inflate',
    headers: { ...json, 'content-encoding': 'gzip' },
    body: Buffer.from('this is not gzip at all'),
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'unsupported charset',
    headers: { 'content-type': 'application/json; charset=koi8-r' },
    body: '{}',
    status: 415,
    code: 'UNSUPPORTED_ENCODING',
  },
  { name: 'bad JSON', headers: json, body: '{"room": ', status: 400, code: 'BAD_MESSAGE' },
];

const ROUTES = [
  '/v1/admin/drain',
  '/v1/admin/rooms/r1',
  '/v1/dev/token',
  '/v1/route?room=r1',
  '/v1/rooms',
  '/v1/rooms/r1/data',
  '/healthz',
  '/readyz',
  '/metrics',
  '/',
  '/no/such/path',
];

/** pino levels: 40 warn, 50 error, 60 fatal. */
const errorLines = (p: NodeProcess) => p.logs.filter((l) => Number(l.level) >= 50);

describe('HTTP client errors are 4xx with a code, logged at warn', () => {
  let redis: RedisServer;
  let dev: NodeProcess;
  let prod: NodeProcess;
  let directory: NodeProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url };
    dev = await startNode({ region: 'ams', env });
    prod = await startNode({
      region: 'ams',
      dev: false,
      env: { ...env, ...API, SFU_CLUSTER_SECRET: 'c'.repeat(32) },
    });
    directory = await startNode({ role: 'directory', env });
  });
  after(async () => {
    await Promise.allSettled([dev, prod, directory].map((p) => p?.stop('SIGKILL')));
    await redis?.stop();
  });

  test('every bad body, on every route of a node and of the directory', async () => {
    for (const target of [dev, prod, directory]) {
      const warnsBefore = target.logs.filter((l) => l.level === 40).length;
      let sent = 0;
      for (const path of ROUTES) {
        for (const method of ['POST', 'GET']) {
          for (const c of CASES) {
            const res = await rawRequest(target.url, {
              method,
              path,
              headers: c.headers,
              body: c.body,
            });
            const what = `${method} ${path} (${c.name}) on ${target.nodeId}`;
            assert.equal(res.status, c.status, `${what}: ${res.body.slice(0, 200)}`);
            assert.equal(res.error?.code, c.code, what);
            sent++;
          }
        }
      }
      // The node logs before it answers, but its stdout reaches us on its own schedule.
      const warns = await waitUntil(`a warn line per refused request (${sent})`, () => {
        const lines = target.logs.filter((l) => l.level === 40).slice(warnsBefore);
        return lines.length >= sent ? lines : undefined;
      });
      assert.deepEqual(errorLines(target), [], 'no error-level line for a client error');
      for (const w of warns) assert.equal(w.err, undefined, 'a warn line carries no error stack');
    }
  });

  test('a malformed percent-encoding in a path is BAD_REQUEST, never INTERNAL', async () => {
    for (const target of [dev, prod]) {
      for (const path of ['/v1/admin/rooms/%E0%A4%A', '/v1/admin/rooms/%zz', '/v1/admin/rooms/%']) {
        const res = await rawRequest(target.url, { path });
        assert.equal(res.status, 400, `${path}: ${res.body}`);
        assert.equal(res.error?.code, 'BAD_REQUEST', path);
      }
      // Paths the static files would serve: a bad encoding there is simply not a file.
      for (const path of ['/%E0%A4%A', '/%', '/app.js%zz']) {
        const res = await rawRequest(target.url, { path });
        assert.ok(res.status === 400 || res.status === 404, `${path}: ${res.status}`);
        assert.ok(res.error?.code === 'BAD_REQUEST' || res.error?.code === 'NOT_FOUND', path);
      }
      await logsFlushed(target);
      assert.deepEqual(errorLines(target), []);
    }
  });

  test('the source map is served in dev mode only', async () => {
    const devMap = await rawRequest(dev.url, { path: '/app.js.map' });
    assert.equal(devMap.status, 200, 'a dev node serves the map (is the page built?)');
    const prodMap = await rawRequest(prod.url, { path: '/app.js.map' });
    assert.equal(prodMap.status, 404);
    assert.equal(prodMap.error?.code, 'NOT_FOUND');
    const page = await rawRequest(prod.url, { path: '/app.js' });
    assert.equal(page.status, 200, 'the page itself is served');
  });
});
