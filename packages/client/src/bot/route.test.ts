/**
 * The bot's way in: dev token, `/v1/route`, then the websocket of the routed node, against a
 * fake node (node:http + ws on 127.0.0.1) that speaks just enough of the protocol to join.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type WebSocket, WebSocketServer } from 'ws';
import { SignalError } from '../core/SignalClient.js';
import { Bot } from './Bot.js';

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString() || 'null');
}

describe('Bot routing', () => {
  let server: Server;
  let wss: WebSocketServer;
  let base: string;
  const log: { path: string; body?: unknown; authorization?: string | undefined }[] = [];
  const sockets: WebSocket[] = [];
  let routeStatus = 200;

  before(async () => {
    server = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', base);
      if (req.method === 'POST' && url.pathname === '/v1/dev/token') {
        log.push({ path: url.pathname, body: await body(req) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: 'dev-token', url: base }));
        return;
      }
      if (req.method === 'GET' && url.pathname === '/v1/route') {
        log.push({
          path: `${url.pathname}${url.search}`,
          authorization: req.headers.authorization,
        });
        res.writeHead(routeStatus, { 'content-type': 'application/json' });
        if (routeStatus !== 200) {
          res.end(JSON.stringify({ error: { code: 'NO_NODE_AVAILABLE', message: 'none left' } }));
          return;
        }
        const region = url.searchParams.get('region');
        res.end(
          JSON.stringify({
            nodeId: 'fake-1',
            region: region ?? 'ams',
            url: base,
            // The routed node's websocket: a path only this fake knows, to prove it is used.
            signalUrl: `${base.replace('http', 'ws')}/routed/signal`,
            distanceKm: region ? 812 : 3,
            reason: region ? 'pinned-region' : 'nearest',
          }),
        );
        return;
      }
      res.writeHead(404).end();
    });
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      sockets.push(ws);
      log.push({ path: `ws ${req.url}` });
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as { type: string; id?: string; token?: string };
        if (m.type !== 'join') return;
        log.push({ path: 'join', body: m.token });
        const self = {
          sessionId: 'PA_1',
          identity: 'bot',
          name: 'bot',
          joinedAt: Date.now(),
          nodeId: 'fake-1',
          region: 'ams',
          tracks: [],
        };
        ws.send(
          JSON.stringify({
            type: 'joined',
            ref: m.id,
            sessionId: 'PA_1',
            room: 'r',
            nodeId: 'fake-1',
            region: 'ams',
            participant: self,
            participants: [self],
            iceServers: [],
            grants: { canPublish: true, canSubscribe: true },
            pingIntervalMs: 60_000,
            pingTimeoutMs: 120_000,
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    log.length = 0;
    routeStatus = 200;
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('routes with a pin-capable dev token, connects to signalUrl, and closes on draining', async () => {
    const bot = await Bot.connect({ url: base, room: 'r', identity: 'bot', region: 'eu' });
    try {
      assert.deepEqual(
        log.map((e) => e.path),
        ['/v1/dev/token', '/v1/route?room=r&region=eu', 'ws /routed/signal', 'join'],
      );
      assert.deepEqual(log[0]?.body, { room: 'r', identity: 'bot', canPinRegion: true });
      assert.equal(log[1]?.authorization, 'Bearer dev-token');
      assert.equal(bot.route?.region, 'eu');
      assert.equal(bot.route?.reason, 'pinned-region');
      assert.equal(bot.route?.distanceKm, 812);

      const closed = new Promise<string>((resolve) => bot.once('closed', resolve));
      const ws = sockets.at(-1);
      ws?.send(
        JSON.stringify({ type: 'leave', reason: 'draining', reconnect: { url: 'http://b:7880' } }),
      );
      ws?.close(4003, 'draining');
      assert.equal(await closed, 'server: draining');
      assert.equal(bot.closedReason, 'server: draining');
      assert.equal(bot.reconnectUrl, 'http://b:7880');
    } finally {
      await bot.close();
    }
  });

  it('asks for no pin grant without a pin', async () => {
    const bot = await Bot.connect({ url: base, room: 'r', identity: 'bot' });
    await bot.close();
    assert.deepEqual(log[0]?.body, { room: 'r', identity: 'bot' });
    assert.equal(log[1]?.path, '/v1/route?room=r');
    assert.equal(bot.route?.reason, 'nearest');
  });

  it('connects straight to url with route: false', async () => {
    const bot = await Bot.connect({ url: base, room: 'r', identity: 'bot', route: false });
    await bot.close();
    assert.deepEqual(
      log.map((e) => e.path),
      ['/v1/dev/token', 'ws /v1/signal', 'join'],
    );
    assert.equal(bot.route, undefined);
  });

  it("fails with the route's error code", async () => {
    routeStatus = 503;
    await assert.rejects(
      Bot.connect({ url: base, token: 'given', room: 'r' }),
      (error: unknown) => error instanceof SignalError && error.code === 'NO_NODE_AVAILABLE',
    );
    assert.deepEqual(
      log.map((e) => e.path),
      ['/v1/route?room=r'],
    );
  });

  it('refuses both pins, and a pin without routing', async () => {
    for (const options of [
      { region: 'eu', node: 'n1' },
      { region: 'eu', route: false },
    ]) {
      await assert.rejects(
        Bot.connect({ url: base, room: 'r', identity: 'bot', ...options }),
        (error: unknown) => error instanceof SignalError && error.code === 'INVALID_ARGUMENT',
      );
    }
    assert.equal(log.length, 0);
  });
});
