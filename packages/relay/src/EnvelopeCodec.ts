import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SfuError } from '@geosfu/common';
import { z } from 'zod';
import {
  type AnswerBody,
  BODY_SCHEMAS,
  type CloseBody,
  type ErrorBody,
  MAX_RELAY_MESSAGE_BYTES,
  type OfferBody,
  RELAY_MESSAGE_TYPES,
  REPLY_TYPES,
  type RelayMessageType,
  RelayNodeId,
} from './messages.js';

/** Version of the envelope; a node refuses (as malformed) any other. */
export const RELAY_PROTOCOL_VERSION = 1;
/** A message whose `ts` is further than this from our clock is stale (or replayed). */
export const MAX_CLOCK_SKEW_MS = 30_000;
/**
 * How long a message id is remembered. A message with timestamp T is accepted only between
 * T - 30 s and T + 30 s of our clock, so a replay of it can arrive at most 60 s after the
 * original did: remembering ids for longer than that catches every replay that the
 * timestamp check lets through. One second of margin for the comparisons at the edges.
 */
export const REPLAY_WINDOW_MS = 2 * MAX_CLOCK_SKEW_MS + 1_000;
/** The cluster secret keys an HMAC-SHA256: shorter than 256 bits is guessable offline. */
export const MIN_SECRET_LENGTH = 32;
/**
 * Ids are remembered only for authentic messages (they are checked after the signature),
 * so only a peer holding the secret can fill this; the cap is a safety net, not a limit.
 */
const MAX_REMEMBERED_IDS = 50_000;
/** Nesting depth accepted by canonicalJson; our bodies are 4 deep. */
const MAX_DEPTH = 32;
/**
 * Domain separation: the relay key is derived from the cluster secret with this label, so
 * that a relay signature can never be mistaken for any other MAC keyed by the same secret
 * (a token signature, say), whatever the other protocol's input looks like.
 */
const KEY_LABEL = 'geosfu/relay/v1';

export type RejectReason = 'malformed' | 'signature' | 'stale' | 'duplicate' | 'wrong-recipient';

const MessageId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, '16 to 64 base64url characters');
const Signature = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');

/** The envelope as it arrives; `body` is parsed after the signature is checked. */
const RawEnvelope = z
  .strictObject({
    v: z.literal(RELAY_PROTOCOL_VERSION),
    type: z.enum(RELAY_MESSAGE_TYPES),
    id: MessageId,
    replyTo: MessageId.optional(),
    from: RelayNodeId,
    to: RelayNodeId,
    ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    body: z.unknown(),
    // Optional here so that an unsigned message is rejected as 'signature', not 'malformed'.
    sig: z.string().max(128).optional(),
  })
  .refine((e) => (e.replyTo !== undefined) === REPLY_TYPES.has(e.type), {
    message: 'replyTo is required on answer and error, and only there',
    path: ['replyTo'],
  });

interface Header {
  v: typeof RELAY_PROTOCOL_VERSION;
  id: string;
  from: string;
  to: string;
  ts: number;
}

/** An authentic, fresh, first-seen message with a valid body. */
export type RelayMessage =
  | (Header & { type: 'offer'; body: OfferBody })
  | (Header & { type: 'answer'; replyTo: string; body: AnswerBody })
  | (Header & { type: 'close'; body: CloseBody })
  | (Header & { type: 'error'; replyTo: string; body: ErrorBody });

export type OpenResult =
  | { ok: true; message: RelayMessage }
  | {
      ok: false;
      reason: RejectReason;
      /** Why, for the log. */
      detail: string;
      /** The sender the message claims (authentic only for a 'malformed' body). */
      from?: string;
      /** An authentic request whose body is invalid: worth an `error` reply. */
      request?: { id: string; from: string };
    };

/** What `seal` needs; `id` is new unless given (a retry keeps its request's id). */
export interface SealInput {
  type: RelayMessageType;
  to: string;
  body: unknown;
  id?: string;
  replyTo?: string;
}

/** A random correlation id: 128 bits, base64url. */
export function newMessageId(): string {
  return randomBytes(16).toString('base64url');
}

/** The key that signs relay messages, derived from the cluster secret (see KEY_LABEL). */
export function deriveRelayKey(secret: string): Buffer {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new SfuError(
      'CONFIG_INVALID',
      `the relay secret must be at least ${MIN_SECRET_LENGTH} characters; give every node of the cluster the same long random secret`,
    );
  }
  return createHmac('sha256', secret).update(KEY_LABEL).digest();
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

/** HMAC-SHA256 (hex) of the canonical form of an envelope without its `sig`. */
export function signEnvelope(key: Buffer, unsigned: Record<string, unknown>): string {
  const { sig: _ignored, ...rest } = unsigned;
  return createHmac('sha256', key).update(canonicalJson(rest)).digest('hex');
}

/**
 * Seals outgoing relay messages of one node and opens incoming ones: signature, recipient,
 * freshness, replay and body checks, in that order (cheap before costly, and nothing that a
 * forger controls is trusted before the signature is checked).
 *
 * Replays: every authentic message's id is remembered for REPLAY_WINDOW_MS and a second one
 * is 'duplicate'. A request's retry reuses the request's id on purpose (so that the answer to
 * any try settles it, and the receiver runs the request once), but carries a new `ts` and so
 * a new signature: for requests the remembered key is id + ts, which still catches a replay
 * of the very same bytes while letting the sender's own retries through to the bus's answer
 * cache.
 */
export class EnvelopeCodec {
  readonly nodeId: string;
  readonly #key: Buffer;
  /** Replay key -> when it may be forgotten; insertion order is arrival order. */
  readonly #seen = new Map<string, number>();

  constructor(options: { nodeId: string; secret: string }) {
    const nodeId = RelayNodeId.safeParse(options.nodeId);
    if (!nodeId.success) {
      throw new SfuError(
        'CONFIG_INVALID',
        `invalid node id ${JSON.stringify(options.nodeId)}: use 1 to 64 letters, digits, ".", "_", "-"`,
      );
    }
    this.nodeId = nodeId.data;
    this.#key = deriveRelayKey(options.secret);
  }

  /**
   * Builds, signs and serializes a message from this node. Throws MESSAGE_TOO_LARGE over
   * MAX_RELAY_MESSAGE_BYTES (the receiver would drop it).
   */
  seal(input: SealInput, now: number = Date.now()): { id: string; payload: string } {
    const id = input.id ?? newMessageId();
    const unsigned: Record<string, unknown> = {
      v: RELAY_PROTOCOL_VERSION,
      type: input.type,
      id,
      replyTo: input.replyTo,
      from: this.nodeId,
      to: input.to,
      ts: now,
      body: input.body,
    };
    const sig = signEnvelope(this.#key, unsigned);
    const payload = canonicalJson({ ...unsigned, sig });
    const bytes = byteLength(payload);
    if (bytes > MAX_RELAY_MESSAGE_BYTES) {
      throw new SfuError(
        'MESSAGE_TOO_LARGE',
        `relay ${input.type} to ${input.to} is ${bytes} bytes, over the ${MAX_RELAY_MESSAGE_BYTES}-byte limit: split the link's tracks over several links`,
      );
    }
    return { id, payload };
  }

  /** Checks one message that arrived on our channel. Never throws. */
  open(raw: string, now: number = Date.now()): OpenResult {
    // Bytes >= UTF-16 units, so the cheap length check comes first.
    if (raw.length > MAX_RELAY_MESSAGE_BYTES || byteLength(raw) > MAX_RELAY_MESSAGE_BYTES) {
      return {
        ok: false,
        reason: 'malformed',
        detail: `${byteLength(raw)} bytes, over the ${MAX_RELAY_MESSAGE_BYTES}-byte limit`,
      };
    }
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return { ok: false, reason: 'malformed', detail: 'not JSON' };
    }
    const parsed = RawEnvelope.safeParse(json);
    if (!parsed.success) {
      return {
        ok: false,
        reason: 'malformed',
        detail: `bad envelope: ${z.prettifyError(parsed.error)}`,
        ...claimedSender(json),
      };
    }
    const envelope = parsed.data;
    const { from } = envelope;
    if (envelope.to !== this.nodeId) {
      return { ok: false, reason: 'wrong-recipient', detail: `addressed to ${envelope.to}`, from };
    }
    const verdict = this.#verify(json as Record<string, unknown>, envelope.sig);
    if (verdict !== undefined) return { ok: false, reason: 'signature', detail: verdict, from };
    if (Math.abs(now - envelope.ts) > MAX_CLOCK_SKEW_MS) {
      return {
        ok: false,
        reason: 'stale',
        detail: `sent ${now - envelope.ts} ms ago by its clock (limit ±${MAX_CLOCK_SKEW_MS} ms): a replay, or clocks out of sync (run NTP)`,
        from,
      };
    }
    const replayKey =
      envelope.type === 'offer'
        ? `${from}/${envelope.id}/${envelope.ts}`
        : `${from}/${envelope.id}`;
    if (!this.#remember(replayKey, now)) {
      return { ok: false, reason: 'duplicate', detail: `id ${envelope.id} seen before`, from };
    }
    const body = BODY_SCHEMAS[envelope.type].safeParse(envelope.body);
    if (!body.success) {
      return {
        ok: false,
        reason: 'malformed',
        detail: `bad ${envelope.type} body: ${z.prettifyError(body.error)}`,
        from,
        ...(envelope.type === 'offer' ? { request: { id: envelope.id, from } } : {}),
      };
    }
    const { sig: _sig, body: _raw, ...header } = envelope;
    return { ok: true, message: { ...header, body: body.data } as RelayMessage };
  }

  /** Undefined if the signature is ours, else why not. */
  #verify(json: Record<string, unknown>, sig: string | undefined): string | undefined {
    if (sig === undefined) return 'unsigned';
    if (!Signature.safeParse(sig).success) return 'the signature is not 64 hex digits';
    let expected: string;
    try {
      // Over what arrived, not over what the schema kept: every byte the sender signed.
      expected = signEnvelope(this.#key, json);
    } catch (error) {
      return `no canonical form: ${(error as Error).message}`;
    }
    // Both are 32 bytes (64 hex digits checked above), as timingSafeEqual requires.
    if (!timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(sig, 'hex'))) {
      return 'bad signature (tampered, or signed with another secret)';
    }
    return undefined;
  }

  /** False if the key was seen within the window. Forgets old keys on the way. */
  #remember(key: string, now: number): boolean {
    for (const [old, expires] of this.#seen) {
      if (expires > now && this.#seen.size < MAX_REMEMBERED_IDS) break;
      this.#seen.delete(old);
    }
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, now + REPLAY_WINDOW_MS);
    return true;
  }
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The `from` of a message that did not parse, if it has a plausible one (for the log). */
function claimedSender(json: unknown): { from?: string } {
  if (typeof json !== 'object' || json === null) return {};
  const from = RelayNodeId.safeParse((json as Record<string, unknown>).from);
  return from.success ? { from: from.data } : {};
}
