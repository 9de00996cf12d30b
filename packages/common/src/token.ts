import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { SfuError } from './errors.js';

/** What a token allows. Missing grants default to the least surprising value for a caller. */
export const Grants = z.object({
  canPublish: z.boolean().default(true),
  canSubscribe: z.boolean().default(true),
  /** May ask `/v1/route` for a given region or node (latency experiments). */
  canPinRegion: z.boolean().default(false),
  /** May call the admin API (drain). */
  admin: z.boolean().default(false),
  /** May send chat messages in the room. */
  canChat: z.boolean().default(true),
  /** Room service API: may create and delete rooms (any room). */
  roomCreate: z.boolean().default(false),
  /** Room service API: may list rooms and read any room (cluster-wide). */
  roomList: z.boolean().default(false),
  /** Room service API: may manage the token's own room (participants, tracks, data). */
  roomAdmin: z.boolean().default(false),
});
export type Grants = z.infer<typeof Grants>;

const Claims = z.object({
  iss: z.string().min(1),
  sub: z.string().min(1).max(128),
  room: z.string().min(1).max(128),
  name: z.string().max(128).optional(),
  grants: Grants.default({
    canPublish: true,
    canSubscribe: true,
    canPinRegion: false,
    admin: false,
    canChat: true,
    roomCreate: false,
    roomList: false,
    roomAdmin: false,
  }),
  exp: z.number(),
});

export interface AccessToken {
  apiKey: string;
  identity: string;
  room: string;
  name: string;
  grants: Grants;
  expiresAt: Date;
}

export interface MintOptions {
  room: string;
  identity: string;
  name?: string;
  grants?: Partial<Grants>;
  /** Lifetime in seconds (default one hour, at most a day). */
  ttlSeconds?: number;
}

const MAX_TTL_SECONDS = 24 * 3600;
/** Tolerated clock difference between the backend that mints and the node that verifies. */
const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * Mints and verifies access tokens: JWT HS256 signed with the API secret, `iss` = API key.
 * An application backend mints one per user and room; the node verifies it on join and route.
 */
export class TokenService {
  readonly #apiKey: string;
  readonly #secret: Uint8Array;

  constructor(apiKey: string, apiSecret: string) {
    if (!apiKey) throw new TypeError('apiKey must not be empty');
    if (apiSecret.length < 16) throw new TypeError('apiSecret must have at least 16 characters');
    this.#apiKey = apiKey;
    this.#secret = new TextEncoder().encode(apiSecret);
  }

  async mint(options: MintOptions): Promise<string> {
    const ttl = options.ttlSeconds ?? 3600;
    if (!Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS) {
      throw new SfuError(
        'INVALID_ARGUMENT',
        `token ttl must be between 1 s and ${MAX_TTL_SECONDS} s`,
      );
    }
    const grants = Grants.parse(options.grants ?? {});
    return new SignJWT({ room: options.room, name: options.name ?? options.identity, grants })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(this.#apiKey)
      .setSubject(options.identity)
      .setIssuedAt()
      .setNotBefore(Math.floor(Date.now() / 1000) - CLOCK_TOLERANCE_SECONDS)
      .setExpirationTime(Math.floor(Date.now() / 1000) + Math.round(ttl))
      .sign(this.#secret);
  }

  /** Verifies a token; throws SfuError TOKEN_MISSING, TOKEN_EXPIRED or TOKEN_INVALID. */
  async verify(token: string | undefined | null): Promise<AccessToken> {
    if (!token) throw new SfuError('TOKEN_MISSING', 'an access token is required');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.#secret, {
        algorithms: ['HS256'],
        issuer: this.#apiKey,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) {
        throw new SfuError('TOKEN_EXPIRED', 'the access token has expired; mint a new one');
      }
      const detail = error instanceof Error ? error.message : String(error);
      throw new SfuError('TOKEN_INVALID', `the access token is not valid here: ${detail}`);
    }
    const claims = Claims.safeParse(payload);
    if (!claims.success) {
      throw new SfuError(
        'TOKEN_INVALID',
        `the access token lacks claims: ${claims.error.issues[0]?.message}`,
      );
    }
    const c = claims.data;
    return {
      apiKey: c.iss,
      identity: c.sub,
      room: c.room,
      name: c.name ?? c.sub,
      grants: c.grants,
      expiresAt: new Date(c.exp * 1000),
    };
  }
}

/** Parses a duration such as `90`, `90s`, `15m`, `1h`, `1d` into seconds. */
export function parseDurationSeconds(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m?.[1])
    throw new SfuError('INVALID_ARGUMENT', `"${text}" is not a duration; use e.g. 90s, 15m, 1h`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
