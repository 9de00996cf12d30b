/** Joining rooms with raw signalling clients and reading a node's view of a room. */
import assert from 'node:assert/strict';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  type ParticipantInfo,
  type ServerMessage,
  TokenService,
} from '@geosfu/common';
import { type RawClient, rawClient } from './ws.js';

/** Mints tokens as a `--dev` node accepts them. */
export const devTokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

/**
 * A raw signalling client joined to `room` on the node at `url`; pushed to `clients` (which
 * the caller closes) before anything can fail. No WebRTC: it joins with `autoSubscribe:
 * false`, since a node ends a session whose subscriber PeerConnection never connects.
 */
export async function joinRaw(
  url: string,
  room: string,
  identity: string,
  clients: RawClient[],
  options: { autoPong?: boolean } = {},
): Promise<{ client: RawClient; joined: Extract<ServerMessage, { type: 'joined' }> }> {
  const c = await rawClient(url, options);
  clients.push(c);
  c.send({
    type: 'join',
    id: 'j',
    token: await devTokens.mint({ room, identity }),
    autoSubscribe: false,
  });
  const reply = await c.waitFor(
    (m) => (m.type === 'joined' || m.type === 'error') && m.ref === 'j',
  );
  if (reply.type !== 'joined') throw new Error(`join failed: ${JSON.stringify(reply)}`);
  return { client: c, joined: reply };
}

/** The participants of `room` as the node at `url` sees them (admin API). */
export async function roomView(url: string, room: string): Promise<ParticipantInfo[]> {
  const admin = await devTokens.mint({ room: 'ops', identity: 'ops', grants: { admin: true } });
  const res = await fetch(`${url}/v1/admin/rooms/${room}`, {
    headers: { authorization: `Bearer ${admin}` },
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { participants: ParticipantInfo[] }).participants;
}
