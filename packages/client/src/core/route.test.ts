/** `route()` against a tiny HTTP server on 127.0.0.1 that answers what each test needs. */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type RouteAnswer, route, routeEndpoint } from './route.js';
import { SignalError } from './SignalClient.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const VALID: RouteAnswer = {
  nodeId: 'node-ams-1',
  region: 'ams',
  url: 'http://127.0.0.1:7881',
  signalUrl: 'ws://127.0.0.1:7881/v1/signal',
  distanceKm: 12,
  reason: 'nearest',
};

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Asserts that `promise` rejects with a SignalError of this code, and returns it. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<SignalError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SignalError, `expected a SignalError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a SignalError ${code}, but it resolved`);
}

describe('route()', () => {
  let server: Server;
  let base: string;
  let handler: Handler;
  const requests: { url: string; authorization: string | undefined }[] = [];

  before(async () => {
    server = createServer((req, res) => {
      requests.push({ url: req.url ?? '', authorization: req.headers.authorization });
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    requests.length = 0;
    handler = (_req, res) => json(res, 500, { error: { code: 'INTERNAL', message: 'no handler' } });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('returns the validated answer, sending the token, room and pin', async () => {
    handler = (_req, res) => json(res, 200, { ...VALID, reason: 'pinned-region' });
    const answer = await route(base, 'tok.en', { room: 'r 1', region: 'ams' });
    assert.deepEqual(answer, { ...VALID, reason: 'pinned-region' });
    assert.equal(requests.length, 1);
    const url = new URL(requests[0]?.url ?? '', base);
    assert.equal(url.pathname, '/v1/route');
    assert.equal(url.searchParams.get('room'), 'r 1');
    assert.equal(url.searchParams.get('region'), 'ams');
    assert.equal(url.searchParams.has('node'), false);
    assert.equal(requests[0]?.authorization, 'Bearer tok.en');
  });

  it('accepts a null distance and a ws:// base URL with a path', async () => {
    handler = (_req, res) =>
      json(res, 200, { ...VALID, distanceKm: null, reason: 'default-region' });
    const answer = await route(`${base.replace('http', 'ws')}/v1/signal`, 't', {
      room: 'r',
      node: 'node-ams-1',
    });
    assert.equal(answer.distanceKm, null);
    const url = new URL(requests[0]?.url ?? '', base);
    assert.equal(url.pathname, '/v1/route');
    assert.equal(url.searchParams.get('node'), 'node-ams-1');
  });

  it("throws the server's error code and message", async () => {
    handler = (_req, res) =>
      json(res, 403, {
        error: { code: 'PERMISSION_DENIED', message: 'pinning needs the canPinRegion grant' },
      });
    const error = await rejectsWith(
      route(base, 't', { room: 'r', region: 'ams' }),
      'PERMISSION_DENIED',
    );
    assert.equal(error.message, 'pinning needs the canPinRegion grant');

    handler = (_req, res) =>
      json(res, 503, { error: { code: 'NO_NODE_AVAILABLE', message: 'no healthy node' } });
    await rejectsWith(route(base, 't', { room: 'r' }), 'NO_NODE_AVAILABLE');

    handler = (_req, res) =>
      json(res, 401, { error: { code: 'TOKEN_EXPIRED', message: 'the token expired' } });
    await rejectsWith(route(base, 't', { room: 'r' }), 'TOKEN_EXPIRED');
  });

  it('maps an error without a known code to the HTTP status', async () => {
    handler = (_req, res) =>
      json(res, 503, { error: { code: 'SOMETHING_NEW', message: 'try later' } });
    const coded = await rejectsWith(route(base, 't', { room: 'r' }), 'SERVICE_UNAVAILABLE');
    assert.match(coded.message, /SOMETHING_NEW: try later/);

    handler = (_req, res) => res.writeHead(502).end('<html>Bad Gateway</html>');
    const html = await rejectsWith(route(base, 't', { room: 'r' }), 'INTERNAL');
    assert.match(html.message, /HTTP 502.*Bad Gateway/);

    handler = (_req, res) => res.writeHead(404).end('Cannot GET /v1/route');
    const missing = await rejectsWith(route(base, 't', { room: 'r' }), 'NOT_FOUND');
    assert.match(missing.message, /sfu-directory/);
  });

  it('rejects garbage JSON with a clear error', async () => {
    handler = (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"nodeId": "n1", ');
    const error = await rejectsWith(route(base, 't', { room: 'r' }), 'BAD_MESSAGE');
    assert.match(error.message, /\/v1\/route answered something that is not JSON: \{"nodeId"/);
  });

  it('rejects JSON that is not a route, naming the field', async () => {
    handler = (_req, res) => json(res, 200, { ...VALID, signalUrl: 'http://127.0.0.1:1/' });
    const badUrl = await rejectsWith(route(base, 't', { room: 'r' }), 'BAD_MESSAGE');
    assert.match(badUrl.message, /invalid route at signalUrl/);

    handler = (_req, res) => json(res, 200, { ...VALID, reason: 'random' });
    const badReason = await rejectsWith(route(base, 't', { room: 'r' }), 'BAD_MESSAGE');
    assert.match(badReason.message, /at reason/);

    handler = (_req, res) => json(res, 200, [VALID]);
    await rejectsWith(route(base, 't', { room: 'r' }), 'BAD_MESSAGE');
  });

  it('refuses both pins without asking the server', async () => {
    await rejectsWith(
      route(base, 't', { room: 'r', region: 'ams', node: 'n1' }),
      'INVALID_ARGUMENT',
    );
    assert.equal(requests.length, 0);
  });

  it('times out on a server that does not answer', async () => {
    handler = () => {
      // Never answers; after() closes the connection.
    };
    const error = await rejectsWith(route(base, 't', { room: 'r', timeoutMs: 200 }), 'TIMEOUT');
    assert.match(error.message, /within 200 ms/);
  });

  it('says so when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await rejectsWith(
      route(`http://127.0.0.1:${port}`, 't', { room: 'r' }),
      'SERVICE_UNAVAILABLE',
    );
    assert.match(error.message, /cannot reach/);
  });
});

describe('routeEndpoint()', () => {
  it('turns node and directory URLs into their /v1/route URL', () => {
    assert.equal(routeEndpoint('http://h:7880').href, 'http://h:7880/v1/route');
    assert.equal(routeEndpoint('wss://h/v1/signal?x=1').href, 'https://h/v1/route');
    assert.throws(() => routeEndpoint('ftp://h'), /unsupported URL scheme/);
    assert.throws(() => routeEndpoint('not a url'), /not a URL/);
  });
});
