import { createHmac } from 'node:crypto';
import type { IceServer, NodeConfig } from '@geosfu/common';

/**
 * TURN credentials in coturn's `use-auth-secret` scheme (the "TURN REST API" draft,
 * draft-uberti-behave-turn-rest-00): the username is `<expiry unix seconds>:<identity>` and
 * the password is base64(HMAC-SHA1(shared secret, username)). coturn recomputes the password
 * from its `static-auth-secret` and refuses a username whose expiry has passed, so nothing
 * has to be stored per user and a leaked credential dies on its own.
 */
export function turnCredential(
  secret: string,
  identity: string,
  expiresAtSeconds: number,
): { username: string; credential: string } {
  const username = `${Math.floor(expiresAtSeconds)}:${identity}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}

/**
 * The ICE servers one session is given in `joined`: the static list (SFU_ICE_SERVERS, e.g. a
 * STUN server) and, when SFU_TURN_URLS and SFU_TURN_SECRET are set, this node's TURN servers
 * with a credential minted for this identity that expires with its access token.
 */
export function iceServersFor(
  config: Pick<NodeConfig, 'iceServers' | 'turnUrls' | 'turnSecret'>,
  identity: string,
  tokenExpiresAt: Date,
): IceServer[] {
  const servers: IceServer[] = config.iceServers.map((s) => ({ ...s }));
  if (config.turnUrls.length > 0 && config.turnSecret !== undefined) {
    servers.push({
      urls: [...config.turnUrls],
      ...turnCredential(config.turnSecret, identity, tokenExpiresAt.getTime() / 1000),
    });
  }
  return servers;
}
