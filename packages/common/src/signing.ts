import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SfuError } from './errors.js';

// The pieces every message that nodes sign for each other is made of: relay signalling
// (packages/relay EnvelopeCodec) and cluster state in Redis (ClusterStateCodec). One copy,
// so that the two cannot disagree on what "canonical" or "fresh" means.

/** The cluster secret keys an HMAC-SHA256: shorter than 256 bits is guessable offline. */
export const MIN_SECRET_LENGTH = 32;
/** A message whose `ts` is further than this from our clock is stale (or replayed). */
export const MAX_CLOCK_SKEW_MS = 30_000;
/**
 * How long a message id is remembered. A message with timestamp T is accepted only between
 * T - 30 s and T + 30 s of our clock, so a replay of it can arrive at most 60 s after the
 * original did: remembering ids for longer than that catches every replay that the
 * timestamp check lets through. One second of margin for the comparisons at the edges.
 */
export const REPLAY_WINDOW_MS = 2 * MAX_CLOCK_SKEW_MS + 1_000;
/**
 * Ids are remembered only for authentic messages (they are checked after the signature),
 * so only a peer holding the secret can fill this; the cap is a safety net, not a limit.
 */
const MAX_REMEMBERED_IDS = 50_000;
/** Nesting depth accepted by canonicalJson; our bodies are at most 5 deep. */
const MAX_DEPTH = 32;
const SIGNATURE = /^[0-9a-f]{64}$/;

/** A random message id: 128 bits, base64url. */
export function newMessageId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * A key derived from the cluster secret for one use. Domain separation: each use has its own
 * label, so that a signature made for one (a relay message) can never pass for another (a
 * room event, a token), whatever the other protocol's input looks like.
 */
export function deriveKey(secret: string, label: string): Buffer {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new SfuError(
      'CONFIG_INVALID',
      `the cluster secret must be at least ${MIN_SECRET_LENGTH} characters; give every node of the cluster the same long random secret`,
    );
  }
  return createHmac('sha256', secret).update(label).digest();
}

/**
 * A deterministic JSON serialization: object keys sorted (by UTF-16 code units, as RFC 8785
 * does), no whitespace, `undefined` members left out as JSON.stringify does. Two parties that
 * hold equal JSON values produce the same bytes, whatever order the keys were built or parsed
 * in, which is what a signature over a re-parsed message needs. Only plain data is accepted:
 * a non-finite number, a bigint, a class instance or nesting deeper than 32 throws TypeError.
 */
export function canonicalJson(value: unknown): string {
  return write(value, 0);
}

function write(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} levels`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value.map((item) => (item === undefined ? 'null' : write(item, depth + 1))).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError('only plain objects have a canonical form');
      }
      const record = value as Record<string, unknown>;
      const members: string[] = [];
      for (const key of Object.keys(record).sort()) {
        const member = record[key];
        if (member === undefined) continue;
        members.push(`${JSON.stringify(key)}:${write(member, depth + 1)}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`a ${typeof value} has no JSON form`);
  }
}

/**
 * JSON.parse of a payload from the network, refused unread when it is over `maxBytes` (UTF-8;
 * the cheap length check first, as bytes >= UTF-16 units). Never throws.
 */
export function parseBoundedJson(
  raw: string,
  maxBytes: number,
): { ok: true; json: unknown } | { ok: false; detail: string } {
  if (raw.length > maxBytes || Buffer.byteLength(raw, 'utf8') > maxBytes) {
    return {
      ok: false,
      detail: `${Buffer.byteLength(raw, 'utf8')} bytes, over the ${maxBytes}-byte limit`,
    };
  }
  try {
    return { ok: true, json: JSON.parse(raw) };
  } catch {
    return { ok: false, detail: 'not JSON' };
  }
}

/** HMAC-SHA256 (hex) of the canonical form of an envelope without its `sig`. */
export function signEnvelope(key: Buffer, unsigned: Record<string, unknown>): string {
  const { sig: _ignored, ...rest } = unsigned;
  return createHmac('sha256', key).update(canonicalJson(rest)).digest('hex');
}

/**
 * Undefined if `sig` is the signature of `json` (without its `sig`) under `key`, else why
 * not. Constant-time: the comparison does not tell a forger how many bytes were right.
 */
export function verifyEnvelope(
  key: Buffer,
  json: Record<string, unknown>,
  sig: unknown,
): string | undefined {
  if (sig === undefined) return 'unsigned';
  if (typeof sig !== 'string' || !SIGNATURE.test(sig)) return 'the signature is not 64 hex digits';
  let expected: string;
  try {
    // Over what arrived, not over what a schema kept: every byte the sender signed.
    expected = signEnvelope(key, json);
  } catch (error) {
    return `no canonical form: ${(error as Error).message}`;
  }
  // Both are 32 bytes (64 hex digits checked above), as timingSafeEqual requires.
  if (!timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(sig, 'hex'))) {
    return 'bad signature (tampered, or signed with another secret)';
  }
  return undefined;
}

/** Why a timestamp is not fresh, or undefined when it is within ±MAX_CLOCK_SKEW_MS. */
export function staleness(
  ts: number,
  now: number,
  maxAgeMs = MAX_CLOCK_SKEW_MS,
): string | undefined {
  const age = now - ts;
  if (age <= maxAgeMs && age >= -MAX_CLOCK_SKEW_MS) return undefined;
  return `sent ${age} ms ago by its clock (accepted: ${-MAX_CLOCK_SKEW_MS} to ${maxAgeMs} ms): a replay, or clocks out of sync (run NTP)`;
}

/**
 * The ids of authentic messages seen within REPLAY_WINDOW_MS: a second one is a replay.
 * Insertion order is arrival order, so forgetting old ids stops at the first young one.
 */
export class ReplayWindow {
  readonly #seen = new Map<string, number>();

  /** False if the key was seen within the window. Forgets old keys on the way. */
  remember(key: string, now: number): boolean {
    for (const [old, expires] of this.#seen) {
      if (expires > now && this.#seen.size < MAX_REMEMBERED_IDS) break;
      this.#seen.delete(old);
    }
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, now + REPLAY_WINDOW_MS);
    return true;
  }
}
