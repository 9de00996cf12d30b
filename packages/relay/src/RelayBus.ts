import type { TypedEmitter } from '@geosfu/common';
import type { RejectReason } from './EnvelopeCodec.js';
import type {
  AnswerBody,
  CloseBody,
  LayersBody,
  OfferBody,
  RelayNotices,
  RelayNoticeType,
  RelayRequests,
  RelayRequestType,
} from './messages.js';

/** Deadline of one try of a request unless the caller says otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** Tries of a request unless the caller says otherwise (the first one and two retries). */
export const DEFAULT_REQUEST_ATTEMPTS = 3;
/**
 * Caps of the request options. They keep a whole request (every try, every back-off) well
 * inside the 60 s for which the receiver remembers what it answered (ANSWER_CACHE_TTL_MS),
 * so that a retry is never mistaken for a new request and run twice.
 */
export const MAX_REQUEST_TIMEOUT_MS = 10_000;
export const MIN_REQUEST_TIMEOUT_MS = 10;
export const MAX_REQUEST_ATTEMPTS = 4;

export interface RelayRequestOptions {
  /** Deadline of each try, ms (10..10000); default 5000. */
  timeoutMs?: number;
  /** How many times to send it in all (1..4); default 3. */
  attempts?: number;
  /** Gives up at once, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Runs a request that another node sent us, once per request id however often the requester
 * retries. Throw an SfuError to answer with its code (INVALID_SDP ...); anything else is
 * answered as INTERNAL. `signal` aborts when the bus closes or when the requester has long
 * given up (HANDLER_DEADLINE_MS): whatever the answer would have been is not sent, so close
 * what the handler created for it.
 */
export type RelayRequestHandler = (
  from: string,
  type: 'offer',
  body: OfferBody,
  signal: AbortSignal,
) => Promise<AnswerBody>;

export type RelayBusState = 'new' | 'starting' | 'running' | 'closed';

export type RelayBusEvents = {
  /** A peer node closed relay link `body.linkId` (a `close` message). */
  linkClose: [from: string, body: CloseBody];
  /** A peer node says which simulcast layers it needs on relay link `body.linkId`. */
  linkLayers: [from: string, body: LayersBody];
  /**
   * A message on our channel was dropped. `from` is the sender it claims, if it named one
   * (not proof of anything unless the reason is 'malformed' after a good signature).
   */
  rejected: [reason: RejectReason, from: string | undefined];
  /**
   * One of our requests was answered (or refused with an error reply) after `tries` sends:
   * its Redis round trips on the critical path are `tries` PUBLISHes of ours plus the far
   * node's PUBLISH of the reply (two when nothing was lost). `sfu_relay_request_round_trips`.
   */
  requestAnswered: [type: RelayRequestType, tries: number];
  /** A Redis command or connection failed; the bus recovers on its own. */
  redisError: [op: string, error: Error];
  /**
   * The subscription is back after Redis was away (never on the first start). Messages sent
   * to us meanwhile are lost: requests are retried by their senders, but a `close` may have
   * been missed, so check the links.
   */
  reconnected: [];
};

/**
 * Server-to-server signalling between SFU nodes: each node listens on its own channel, and
 * messages are signed envelopes (see EnvelopeCodec) of the types in messages.ts.
 *
 * - `request` sends a request (an `offer`) and resolves with its answer. Each try waits
 *   `timeoutMs`; between tries it backs off exponentially with jitter. Every try carries the
 *   same request id, so an answer to any try settles it and the receiver runs the request
 *   once (a retry of an answered request gets the same answer again). Rejects with the
 *   code of the receiver's `error` reply, TIMEOUT after the last try, SERVICE_UNAVAILABLE if
 *   the last try could not even be sent, CLOSED if the bus closes meanwhile,
 *   MESSAGE_TOO_LARGE or INVALID_ARGUMENT at once for what no retry can fix.
 * - `send` sends a one-way message (a `close`, a `layers`), once: the receiver does not confirm it.
 * - `onRequest` sets the one handler of incoming requests.
 *
 * Both implementations share the dispatch code (BaseRelayBus) and sign every message:
 * RedisRelayBus over Redis pub/sub, MemoryRelayBus within one process.
 */
export interface RelayBus
  extends Pick<TypedEmitter<RelayBusEvents>, 'on' | 'once' | 'off' | 'waitFor'> {
  readonly kind: 'redis' | 'memory';
  readonly nodeId: string;
  readonly state: RelayBusState;
  /** False while the transport is away (never for the memory bus while it runs). */
  readonly connected: boolean;
  /** Starts listening on this node's channel. Idempotent. */
  start(): Promise<void>;
  request<T extends RelayRequestType>(
    to: string,
    type: T,
    body: RelayRequests[T]['body'],
    options?: RelayRequestOptions,
  ): Promise<RelayRequests[T]['reply']>;
  send<T extends RelayNoticeType>(to: string, type: T, body: RelayNotices[T]): Promise<void>;
  /** Sets the request handler; the returned function removes it. One handler at a time. */
  onRequest(handler: RelayRequestHandler): () => void;
  /** Stops listening; pending requests reject with CLOSED. Idempotent. */
  close(): Promise<void>;
}
