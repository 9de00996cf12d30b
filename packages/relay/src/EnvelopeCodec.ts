import {
  canonicalJson,
  deriveKey,
  MAX_CLOCK_SKEW_MS,
  MIN_SECRET_LENGTH,
  newMessageId,
  parseBoundedJson,
  REPLAY_WINDOW_MS,
  ReplayWindow,
  SfuError,
  signEnvelope,
  staleness,
  verifyEnvelope,
} from '@geosfu/common';
import { z } from 'zod';
import {
  type AnswerBody,
  BODY_SCHEMAS,
  type CloseBody,
  type ErrorBody,
  type LayersBody,
  MAX_RELAY_MESSAGE_BYTES,
  type OfferBody,
  RELAY_MESSAGE_TYPES,
  REPLY_TYPES,
  type RelayMessageType,
  RelayNodeId,
} from './messages.js';

/** Version of the envelope; a node refuses (as malformed) any other. */
export const RELAY_PROTOCOL_VERSION = 1;
// Shared with the cluster-state codec (packages/common signing.ts); re-exported because
// they are part of this package's surface.
export {
  canonicalJson,
  MAX_CLOCK_SKEW_MS,
  MIN_SECRET_LENGTH,
  newMessageId,
  REPLAY_WINDOW_MS,
  signEnvelope,
};

/**
 * Domain separation: the relay key is derived from the cluster secret with this label, so
 * that a relay signature can never be mistaken for any other MAC keyed by the same secret
 * (a token signature, say), whatever the other protocol's input looks like.
 */
const KEY_LABEL = 'geosfu/relay/v1';

export type RejectReason = 'malformed' | 'signature' | 'stale' | 'duplicate' | 'wrong-recipient';

const MessageId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, '16 to 64 base64url characters');

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
  | (Header & { type: 'layers'; body: LayersBody })
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

/** The key that signs relay messages, derived from the cluster secret (see KEY_LABEL). */
export function deriveRelayKey(secret: string): Buffer {
  return deriveKey(secret, KEY_LABEL);
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
  readonly #seen = new ReplayWindow();

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
    const read = parseBoundedJson(raw, MAX_RELAY_MESSAGE_BYTES);
    if (!read.ok) return { ok: false, reason: 'malformed', detail: read.detail };
    const json = read.json;
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
    const verdict = verifyEnvelope(this.#key, json as Record<string, unknown>, envelope.sig);
    if (verdict !== undefined) return { ok: false, reason: 'signature', detail: verdict, from };
    const stale = staleness(envelope.ts, now);
    if (stale !== undefined) return { ok: false, reason: 'stale', detail: stale, from };
    const replayKey =
      envelope.type === 'offer'
        ? `${from}/${envelope.id}/${envelope.ts}`
        : `${from}/${envelope.id}`;
    if (!this.#seen.remember(replayKey, now)) {
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
