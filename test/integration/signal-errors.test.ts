/**
 * Bad input on the signalling websocket: each kind gets an error with its code, the server
 * stays up, other sessions are unaffected, and repeated abuse closes only that socket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CLOSE_CODES,
  DEV_API_KEY,
  DEV_API_SECRET,
  LIMITS,
  type ServerMessage,
  TokenService,
} from '@geosfu/common';
import { SignJWT } from 'jose';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RawClient, rawClient } from '../helpers/ws.js';

const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);
const isError = (code: string) => (m: ServerMessage) => m.type === 'error' && m.code === code;

describe('signalling rejects bad input with a code', () => {
  let node: NodeProcess;
  const clients: RawClient[] = [];
  const open = async (options?: { autoPong?: boolean }) => {
    const c = await rawClient(node.url, options);
    clients.push(c);
    return c;
  };

  before(async () => {
    node = await startNode({ args: ['--ping-interval-ms', '250', '--ping-timeout-ms', '1500'] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await node.stop();
  });

  test('malformed JSON, unknown type, non-object, binary frame', async () => {
    const c = await open();
    c.send('{"type": "join", ');
    await c.waitFor(isError('BAD_MESSAGE'));
    c.send({ type: 'teleport', id: 'q1' });
    const unknown = await c.waitFor(isError('UNKNOWN_TYPE'));
    assert.equal(
      unknown.type === 'error' && unknown.ref,
      'q1',
      'the error refers to the request id',
    );
    c.send('[1,2,3]');
    c.send(Buffer.from([1, 2, 3]));
    await c.waitFor((m) => m.type === 'error' && m.message.includes('binary'));
    assert.equal(c.messages.filter((m) => m.type === 'error').length, 4);
    assert.equal(c.ws.readyState, c.ws.OPEN, 'a few bad frames do not close the socket');
  });

  test('a frame over the size limit', async () => {
    const c = await open();
    c.send({ type: 'chat', text: 'x'.repeat(LIMITS.maxMessageBytes + 10) });
    const e = await c.waitFor(isError('MESSAGE_TOO_LARGE'));
    assert.match(e.type === 'error' ? e.message : '', /limit/);
    assert.equal(c.ws.readyState, c.ws.OPEN);
  });

  test('a message before join', async () => {
    const c = await open();
    c.send({ type: 'chat', id: 'c1', text: 'hello' });
    const e = await c.waitFor(isError('NOT_JOINED'));
    assert.equal(e.type === 'error' && e.ref, 'c1');
  });

  test('missing, forged and expired tokens', async () => {
    const c = await open();
    c.send({ type: 'join', id: 'j1' });
    await c.waitFor(isError('TOKEN_MISSING'));
    const forged = await new TokenService(DEV_API_KEY, 'another-secret-another-secret-xx').mint({
      room: 'r',
      identity: 'mallory',
    });
    c.send({ type: 'join', id: 'j2', token: forged });
    await c.waitFor(isError('TOKEN_INVALID'));
    c.send({ type: 'join', id: 'j3', token: 'not.a.jwt' });
    await c.waitFor((m) => m.type === 'error' && m.ref === 'j3' && m.code === 'TOKEN_INVALID');
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ room: 'r', grants: {} })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(DEV_API_KEY)
      .setSubject('late')
      .setIssuedAt(now - 7200)
      .setExpirationTime(now - 3600)
      .sign(new TextEncoder().encode(DEV_API_SECRET));
    c.send({ type: 'join', id: 'j4', token: expired });
    await c.waitFor(isError('TOKEN_EXPIRED'));
  });

  test('an invalid SDP after a good join, and the session stays usable', async () => {
    const c = await open();
    c.send({ type: 'join', id: 'j', token: await tokens.mint({ room: 'sdp', identity: 'alice' }) });
    await c.waitFor((m) => m.type === 'joined');
    c.send({ type: 'publish', id: 'p1', sdp: 'this is not sdp', tracks: [] });
    await c.waitFor((m) => m.type === 'error' && m.code === 'INVALID_SDP' && m.ref === 'p1');
    c.send({
      type: 'publish',
      id: 'p2',
      sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n',
      tracks: [{ mid: '7', kind: 'video', source: 'camera' }],
    });
    await c.waitFor((m) => m.type === 'error' && m.code === 'INVALID_SDP' && m.ref === 'p2');
    c.send({ type: 'chat', id: 'c', text: 'still here' });
    await c.waitFor((m) => m.type === 'ok' && m.ref === 'c');
  });

  test('joining twice on one connection', async () => {
    const c = await open();
    const token = await tokens.mint({ room: 'twice', identity: 'bob' });
    c.send({ type: 'join', id: 'a', token });
    await c.waitFor((m) => m.type === 'joined');
    c.send({ type: 'join', id: 'b', token });
    await c.waitFor((m) => m.type === 'error' && m.code === 'ALREADY_JOINED' && m.ref === 'b');
  });

  test('a message flood is rate limited', async () => {
    const c = await open();
    for (let i = 0; i < LIMITS.messageBurst + 20; i++) c.send({ type: 'ping', ts: i });
    await c.waitFor(isError('RATE_LIMITED'));
  });

  test('repeated abuse closes that socket with 1008; others are unaffected', async () => {
    const bystander = await open();
    bystander.send({
      type: 'join',
      id: 'j',
      token: await tokens.mint({ room: 'abuse', identity: 'carol' }),
    });
    await bystander.waitFor((m) => m.type === 'joined');

    const abuser = await open();
    for (let i = 0; i <= LIMITS.maxErrorsPerWindow; i++) abuser.send('garbage');
    const { code } = await abuser.closed;
    assert.equal(code, CLOSE_CODES.policyViolation);

    bystander.send({ type: 'ping', ts: 42 });
    await bystander.waitFor((m) => m.type === 'pong' && m.ts === 42);
    const res = await fetch(`${node.url}/healthz`);
    assert.equal(res.status, 200, 'the server is still up');
  });

  test('a client that stops answering pings is disconnected', async () => {
    const c = await open({ autoPong: false });
    c.send({
      type: 'join',
      id: 'j',
      token: await tokens.mint({ room: 'silent', identity: 'dave' }),
    });
    await c.waitFor((m) => m.type === 'joined');
    const { code } = await c.closed;
    assert.equal(code, CLOSE_CODES.heartbeatTimeout);
    const leave = c.messages.find((m) => m.type === 'leave');
    assert.equal(leave?.type === 'leave' && leave.reason, 'heartbeat-timeout');
  });

  test('HTTP: unknown endpoints and bad token requests get coded JSON errors', async () => {
    const notFound = await fetch(`${node.url}/v1/nope`);
    assert.equal(notFound.status, 404);
    assert.equal(((await notFound.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    const bad = await fetch(`${node.url}/v1/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"room":',
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'BAD_MESSAGE');
    const missing = await fetch(`${node.url}/v1/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"room":"r"}',
    });
    assert.equal(
      ((await missing.json()) as { error: { code: string } }).error.code,
      'INVALID_ARGUMENT',
    );
  });
});
