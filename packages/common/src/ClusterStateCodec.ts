import { z } from 'zod';
import {
  deriveKey,
  newMessageId,
  parseBoundedJson,
  ReplayWindow,
  signEnvelope,
  staleness,
  verifyEnvelope,
} from './signing.js';

/**
 * What nodes write to Redis for each other, each signed on its own:
 * - `room-event`: a room event on `sfu:room:<room>:events`;
 * - `session`: a session record in `sfu:room:<room>:sessions`;
 * - `node-record`: a node's record at `sfu:node:<id>`;
 * - `node-message`: an up, update or down message on `sfu:nodes`;
 * - `room-settings`: a room created through the room service API, at `sfu:roomsettings:<room>`.
 */
export const CLUSTER_STATE_KINDS = [
  'room-event',
  'session',
  'node-record',
  'node-message',
  'room-settings',
] as const;
export type ClusterStateKind = (typeof CLUSTER_STATE_KINDS)[number];

/**
 * Label of `sfu_cluster_messages_rejected_total{kind}`: the signed kinds, and `expiry` for a
 * key-expiry notification (Redis sends those unsigned) of a node whose record is still there.
 */
export type ClusterRejectKind = ClusterStateKind | 'expiry';
/**
 * Why something was rejected (label `reason`): not JSON or not an envelope (`malformed`),
 * unsigned or not signed by us for this kind and key or channel (`signature`), too old
 * (`stale`), seen before (`duplicate`), authentic but not a valid payload (`invalid`: a node
 * of another version), or the expiry or down of a node whose record is live (`node-alive`).
 */
export type ClusterRejectReason =
  | 'malformed'
  | 'signature'
  | 'stale'
  | 'duplicate'
  | 'invalid'
  | 'node-alive';

/** Version of the envelope; another one is `malformed`. */
export const CLUSTER_STATE_VERSION = 1;
/** Nothing we sign is near this; a larger payload is refused before JSON.parse. */
export const MAX_CLUSTER_STATE_BYTES = 64 * 1024;
/**
 * Domain separation from the relay key (`geosfu/relay/v1`): a relay message can never pass
 * for cluster state, nor the other way round. Within cluster state, the kind and the key or
 * channel are signed too (see `seal`), so a session record cannot be replayed as a room
 * event, nor an event of one room in another.
 */
const KEY_LABEL = 'geosfu/cluster-state/v1';

const Envelope = z.strictObject({
  v: z.literal(CLUSTER_STATE_VERSION),
  id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  d: z.unknown(),
  sig: z.string().max(128),
});

/**
 * How old a payload may be:
 * - `message` (pub/sub): ±MAX_CLOCK_SKEW_MS, and each id is accepted once (replays within the
 *   window are `duplicate`, later ones `stale`);
 * - `{ maxAgeMs }` (a record rewritten periodically, like a node's on every heartbeat): no
 *   older than that, so a copied record cannot be written back once it is out of date;
 * - `record` (state that lives as long as what it describes, like a session): any age.
 */
export type Freshness = 'message' | 'record' | { maxAgeMs: number };

export interface OpenOptions<T> {
  kind: ClusterStateKind;
  /** The key (and hash field) or channel it was read from: it is part of what is signed. */
  context: string;
  schema: z.ZodType<T>;
  freshness: Freshness;
}

export type StateOpenResult<T> =
  | { ok: true; value: T; id: string; ts: number }
  | { ok: false; reason: Exclude<ClusterRejectReason, 'node-alive'>; detail: string };

/**
 * Signs and checks what nodes write to Redis for each other (HMAC-SHA256 with a key derived
 * from SFU_CLUSTER_SECRET, the same envelope logic as relay messages: `signing.ts`).
 *
 * Wire form: `{"v":1,"id","ts","d","sig"}` where `d` is the payload and `sig` the HMAC of the
 * canonical JSON of `{v, id, ts, d, k: kind, c: context}`. Kind and context are not sent:
 * the reader supplies what it expects, so a payload moved to another key, channel or use
 * fails the signature. Checks run signature first, then freshness, then replay, then the
 * payload's schema: nothing a forger controls is trusted before the signature.
 *
 * One codec per process and use (it remembers message ids for replay detection).
 */
export class ClusterStateCodec {
  readonly #key: Buffer;
  readonly #seen = new ReplayWindow();

  constructor(secret: string) {
    this.#key = deriveKey(secret, KEY_LABEL);
  }

  /** The wire form of `data`, signed for `kind` at `context` (a key or channel). */
  seal(kind: ClusterStateKind, context: string, data: unknown, now: number = Date.now()): string {
    const unsigned = { v: CLUSTER_STATE_VERSION, id: newMessageId(), ts: now, d: data };
    const sig = signEnvelope(this.#key, { ...unsigned, k: kind, c: context });
    return JSON.stringify({ ...unsigned, sig });
  }

  /** Checks one payload read from `options.context`. Never throws. */
  open<T>(raw: string, options: OpenOptions<T>, now: number = Date.now()): StateOpenResult<T> {
    const read = parseBoundedJson(raw, MAX_CLUSTER_STATE_BYTES);
    if (!read.ok) return { ok: false, reason: 'malformed', detail: read.detail };
    const json = read.json;
    if (typeof json !== 'object' || json === null || !('sig' in json)) {
      // Plain JSON (what nodes of before this envelope wrote, or a forger): no signature.
      return { ok: false, reason: 'signature', detail: 'unsigned' };
    }
    const envelope = Envelope.safeParse(json);
    if (!envelope.success) {
      return { ok: false, reason: 'malformed', detail: z.prettifyError(envelope.error) };
    }
    const { sig, ...unsigned } = envelope.data;
    const verdict = verifyEnvelope(
      this.#key,
      { ...(json as Record<string, unknown>), k: options.kind, c: options.context },
      sig,
    );
    if (verdict !== undefined) return { ok: false, reason: 'signature', detail: verdict };
    const { freshness } = options;
    if (freshness !== 'record') {
      const stale = staleness(
        unsigned.ts,
        now,
        freshness === 'message' ? undefined : freshness.maxAgeMs,
      );
      if (stale !== undefined) return { ok: false, reason: 'stale', detail: stale };
    }
    if (
      freshness === 'message' &&
      !this.#seen.remember(`${options.context}\n${unsigned.id}`, now)
    ) {
      return { ok: false, reason: 'duplicate', detail: `id ${unsigned.id} seen before` };
    }
    const value = options.schema.safeParse(unsigned.d);
    if (!value.success) {
      return { ok: false, reason: 'invalid', detail: z.prettifyError(value.error) };
    }
    return { ok: true, value: value.data, id: unsigned.id, ts: unsigned.ts };
  }
}
