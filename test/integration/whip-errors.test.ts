/**
 * WHIP and WHEP refuse bad input with their documented status and a coded JSON body, and the
 * node stays healthy: a garbage offer, an offer without media, a wrong or missing token, a
 * token for another room or without the right grant, a body that is not SDP, a PATCH or
 * DELETE of an unknown session, an ICE restart, a stale If-Match, a second DELETE. The one
 * valid session is offered by a werift peer (its ICE never needs to complete for this).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import { RTCPeerConnection } from 'werift';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { waitForEqual } from '../helpers/wait.js';

const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);
const ROOM = 'whip-errors';
const NO_MEDIA = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE\r\n';

/** An offer of `direction` audio and video m-lines, from a werift peer closed by the caller. */
async function offer(
  pcs: RTCPeerConnection[],
  direction: 'sendonly' | 'recvonly',
): Promise<string> {
  const pc = new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceServers: [],
    iceStunGatherTimeout: 0,
    iceUseIpv6: false,
  });
  pcs.push(pc);
  pc.addTransceiver('video', { direction });
  pc.addTransceiver('audio', { direction });
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription?.sdp ?? '';
}

interface Reply {
  status: number;
  headers: Headers;
  code: string | undefined;
  text: string;
}

describe('WHIP and WHEP refuse bad input with a code', () => {
  let node: NodeProcess;
  const pcs: RTCPeerConnection[] = [];
  let publishToken: string;

  const call = async (
    method: string,
    path: string,
    options: { token?: string; type?: string; body?: string; headers?: Record<string, string> },
  ): Promise<Reply> => {
    const response = await fetch(`${node.url}${path}`, {
      method,
      redirect: 'manual',
      headers: {
        ...(options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` }),
        ...(options.type === undefined ? {} : { 'Content-Type': options.type }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: options.body }),
    });
    const text = await response.text();
    let code: string | undefined;
    if (response.headers.get('content-type')?.startsWith('application/json')) {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    }
    return { status: response.status, headers: response.headers, code, text };
  };
  const expectError = (reply: Reply, status: number, code: string) => {
    assert.equal(reply.status, status, reply.text);
    assert.equal(reply.code, code, reply.text);
    assert.equal(reply.headers.get('access-control-allow-origin'), '*');
  };

  before(async () => {
    node = await startNode();
    publishToken = await tokens.mint({ room: ROOM, identity: 'pub' });
  });
  after(async () => {
    await Promise.allSettled(pcs.map((pc) => pc.close()));
    await node.stop();
  });

  test('OPTIONS answers the CORS preflight and says what a POST takes', async () => {
    for (const kind of ['whip', 'whep']) {
      const reply = await call('OPTIONS', `/v1/${kind}/${ROOM}`, {});
      assert.equal(reply.status, 204);
      assert.equal(reply.headers.get('access-control-allow-origin'), '*');
      assert.match(reply.headers.get('access-control-allow-methods') ?? '', /POST/);
      assert.match(reply.headers.get('access-control-allow-headers') ?? '', /Authorization/);
      assert.equal(reply.headers.get('accept-post'), 'application/sdp');
    }
    const session = await call('OPTIONS', '/v1/sessions/whatever', {});
    assert.equal(session.status, 204);
    assert.match(session.headers.get('access-control-allow-methods') ?? '', /PATCH, DELETE/);
  });

  test('bad offers, tokens and grants: 400, 401, 403, 415', async () => {
    const sdp = 'application/sdp';
    const path = `/v1/whip/${ROOM}`;
    const valid = await offer(pcs, 'sendonly');
    expectError(
      await call('POST', path, { token: publishToken, type: sdp, body: 'garbage' }),
      400,
      'INVALID_SDP',
    );
    expectError(
      await call('POST', path, { token: publishToken, type: sdp, body: NO_MEDIA }),
      400,
      'INVALID_SDP',
    );
    // A WHEP offer (recvonly) sent to WHIP publishes nothing; a WHIP one sent to WHEP sees nothing.
    const viewerOffer = await offer(pcs, 'recvonly');
    expectError(
      await call('POST', path, { token: publishToken, type: sdp, body: viewerOffer }),
      400,
      'INVALID_SDP',
    );
    expectError(
      await call('POST', `/v1/whep/${ROOM}`, { token: publishToken, type: sdp, body: valid }),
      400,
      'INVALID_SDP',
    );
    expectError(
      await call('POST', path, { token: publishToken, type: 'text/plain', body: valid }),
      415,
      'UNSUPPORTED_ENCODING',
    );
    expectError(await call('POST', path, { type: sdp, body: valid }), 401, 'TOKEN_MISSING');
    expectError(
      await call('POST', path, { token: 'not-a-token', type: sdp, body: valid }),
      401,
      'TOKEN_INVALID',
    );
    const otherRoom = await tokens.mint({ room: 'elsewhere', identity: 'pub' });
    expectError(
      await call('POST', path, { token: otherRoom, type: sdp, body: valid }),
      403,
      'PERMISSION_DENIED',
    );
    const viewer = await tokens.mint({ room: ROOM, identity: 'v', grants: { canPublish: false } });
    expectError(
      await call('POST', path, { token: viewer, type: sdp, body: valid }),
      403,
      'PERMISSION_DENIED',
    );
    // Nothing above joined the room.
    assert.equal(await metricValue(node.url, 'sfu_participants'), 0);
  });

  test('unknown sessions: PATCH and DELETE get 404', async () => {
    const fragment = 'a=ice-ufrag:x\r\na=ice-pwd:y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n';
    expectError(
      await call('PATCH', '/v1/sessions/nope', {
        type: 'application/trickle-ice-sdpfrag',
        body: fragment,
      }),
      404,
      'NOT_FOUND',
    );
    expectError(await call('DELETE', '/v1/sessions/nope', {}), 404, 'NOT_FOUND');
  });

  test('a session: trickle, ICE restart, If-Match, DELETE twice', async () => {
    const sdp = await offer(pcs, 'sendonly');
    const created = await call('POST', `/v1/whip/${ROOM}`, {
      token: publishToken,
      type: 'application/sdp',
      body: sdp,
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get('content-type'), 'application/sdp');
    assert.match(created.text, /^v=0/);
    const location = created.headers.get('location') ?? '';
    assert.match(location, /^\/v1\/sessions\/[\w-]{22}$/);
    const etag = created.headers.get('etag') ?? '';
    assert.match(etag, /^"[0-9a-f]+"$/);
    assert.equal(created.headers.get('accept-patch'), 'application/trickle-ice-sdpfrag');
    assert.equal(await metricValue(node.url, 'sfu_participants'), 1);

    const ufrag = /a=ice-ufrag:(\S+)/.exec(sdp)?.[1] ?? '';
    const pwd = /a=ice-pwd:(\S+)/.exec(sdp)?.[1] ?? '';
    const mid = /a=mid:(\S+)/.exec(sdp)?.[1] ?? '';
    const trickle = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:${mid}\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n`;
    const fragType = 'application/trickle-ice-sdpfrag';
    const patched = await call('PATCH', location, {
      type: fragType,
      body: trickle,
      headers: { 'If-Match': etag },
    });
    assert.equal(patched.status, 204, patched.text);
    expectError(
      await call('PATCH', location, { type: fragType, body: trickle.replace(ufrag, 'newufrag') }),
      422,
      'ICE_RESTART_UNSUPPORTED',
    );
    expectError(
      await call('PATCH', location, {
        type: fragType,
        body: trickle,
        headers: { 'If-Match': '"stale"' },
      }),
      412,
      'PRECONDITION_FAILED',
    );
    expectError(
      await call('PATCH', location, { type: 'application/sdp', body: trickle }),
      415,
      'UNSUPPORTED_ENCODING',
    );
    expectError(
      await call('PATCH', location, { type: fragType, body: 'not sdp at all' }),
      400,
      'BAD_REQUEST',
    );

    const deleted = await call('DELETE', location, {});
    assert.equal(deleted.status, 200, deleted.text);
    expectError(await call('DELETE', location, {}), 404, 'NOT_FOUND');
    expectError(await call('PATCH', location, { type: fragType, body: trickle }), 404, 'NOT_FOUND');
    await waitForEqual(
      'the node to count no participant',
      () => metricValue(node.url, 'sfu_participants'),
      0,
    );
  });

  test('the node stays healthy', async () => {
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await metricValue(node.url, 'sfu_http_sessions_total', { kind: 'whip' }), 1);
    const errors = node.logs.filter((entry) => Number(entry.level) >= 50);
    assert.deepEqual(errors, [], 'no error was logged');
  });
});
