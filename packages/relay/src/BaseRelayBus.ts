import {
  InvalidStateError,
  isErrorCode,
  Lifecycle,
  type Logger,
  SfuError,
  silentLogger,
  ThrottledWarn,
  TypedEmitter,
  toSfuError,
} from '@geosfu/common';
import { z } from 'zod';
import { EnvelopeCodec, newMessageId, type OpenResult } from './EnvelopeCodec.js';
import {
  AnswerBody,
  CloseBody,
  type ErrorBody,
  LayersBody,
  OfferBody,
  RelayNodeId,
  type RelayNotices,
  type RelayNoticeType,
  type RelayRequests,
  type RelayRequestType,
} from './messages.js';
import {
  DEFAULT_REQUEST_ATTEMPTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MAX_REQUEST_ATTEMPTS,
  MAX_REQUEST_TIMEOUT_MS,
  MIN_REQUEST_TIMEOUT_MS,
  type RelayBus,
  type RelayBusEvents,
  type RelayBusState,
  type RelayRequestHandler,
  type RelayRequestOptions,
} from './RelayBus.js';

/**
 * How long the receiver remembers the reply to a request, from when it was computed. A
 * whole request (MAX_REQUEST_ATTEMPTS tries of MAX_REQUEST_TIMEOUT_MS, back-offs, sends)
 * lasts under 50 s, so every retry of it finds the entry: a handler never runs twice.
 */
export const ANSWER_CACHE_TTL_MS = 60_000;
/** Replies remembered at most; the oldest go first (running requests are never dropped). */
const MAX_ANSWERS_REMEMBERED = 1_000;
/**
 * A handler still running this long after its request arrived is abandoned: its requester
 * gave up long ago. It gets an aborted signal and the request is answered TIMEOUT.
 */
export const HANDLER_DEADLINE_MS = 50_000;
/** Back-off between tries: 200 ms doubling, capped at 2 s, with jitter (half to all of it). */
const RETRY_BACKOFF_BASE_MS = 200;
const RETRY_BACKOFF_MAX_MS = 2_000;

const RequestOptions = z.object({
  timeoutMs: z
    .number()
    .int()
    .min(MIN_REQUEST_TIMEOUT_MS)
    .max(MAX_REQUEST_TIMEOUT_MS)
    .default(DEFAULT_REQUEST_TIMEOUT_MS),
  attempts: z.number().int().min(1).max(MAX_REQUEST_ATTEMPTS).default(DEFAULT_REQUEST_ATTEMPTS),
});

type Reply = { type: 'answer'; body: AnswerBody } | { type: 'error'; body: ErrorBody };

export interface BaseRelayBusOptions {
  /** This node's id (the registry's): its channel, and the `from` of what it sends. */
  nodeId: string;
  /** The cluster secret, the same on every node, at least 32 characters. */
  secret: string;
  logger?: Logger;
}

/**
 * Everything of a relay bus but the transport: sealing and opening envelopes, request and
 * reply correlation, retries, the answer cache, dispatch. A subclass moves payloads: it
 * implements openTransport / transmit / closeTransport and calls `receive` with every
 * payload that arrives on this node's channel.
 */
export abstract class BaseRelayBus extends TypedEmitter<RelayBusEvents> implements RelayBus {
  abstract readonly kind: 'redis' | 'memory';
  readonly nodeId: string;
  protected readonly logger: Logger;
  readonly #codec: EnvelopeCodec;

  #state: RelayBusState = 'new';
  readonly #life = new Lifecycle('the relay bus', () => this.#start());
  #handler: RelayRequestHandler | undefined;
  /** Our requests waiting for a reply, by request id. */
  readonly #pending = new Map<string, PendingRequest>();
  /**
   * Requests we received, by `from/id`: running ones, and the replies of finished ones for
   * ANSWER_CACHE_TTL_MS. Finished entries are re-inserted when they finish, so that among
   * them insertion order is expiry order.
   */
  readonly #answers = new Map<string, AnswerEntry>();
  /** A flood of bad messages is logged at warn once per reason per 10 s, then at debug. */
  readonly #rejectLog: ThrottledWarn;

  constructor(options: BaseRelayBusOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'relay' });
    super((event, error) => logger.error({ err: error, event }, 'relay bus listener threw'));
    this.logger = logger;
    this.#rejectLog = new ThrottledWarn(logger, 'dropped a relay message');
    this.#codec = new EnvelopeCodec({ nodeId: options.nodeId, secret: options.secret });
    this.nodeId = this.#codec.nodeId;
  }

  abstract get connected(): boolean;
  /** Starts receiving this node's messages; throws if it cannot. */
  protected abstract openTransport(): Promise<void>;
  /** Delivers a payload to node `to`'s channel; resolves with how many listeners got it. */
  protected abstract transmit(to: string, payload: string): Promise<number>;
  /** Stops receiving and frees connections. Called once. */
  protected abstract closeTransport(): Promise<void>;

  get state(): RelayBusState {
    return this.#state;
  }

  start(): Promise<void> {
    return this.#life.start();
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await this.openTransport();
    } catch (error) {
      if (this.#state === 'starting') this.#state = 'new';
      throw error;
    }
    if (this.#state !== 'starting') return; // closed meanwhile
    this.#state = 'running';
    this.logger.info({ nodeId: this.nodeId, kind: this.kind }, 'relay bus listening');
  }

  onRequest(handler: RelayRequestHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('onRequest() takes a function');
    if (this.#handler !== undefined) {
      throw new InvalidStateError('a relay request handler is already set: remove it first');
    }
    this.#handler = handler;
    return () => {
      if (this.#handler === handler) this.#handler = undefined;
    };
  }

  async request<T extends RelayRequestType>(
    to: string,
    type: T,
    body: RelayRequests[T]['body'],
    options: RelayRequestOptions = {},
  ): Promise<RelayRequests[T]['reply']> {
    this.#assertRunning();
    const target = this.#checkTarget(to);
    if (type !== 'offer') throw new SfuError('INVALID_ARGUMENT', `no relay request ${type}`);
    const offer = checkArgument(OfferBody, body, 'relay offer');
    const { timeoutMs, attempts } = checkArgument(RequestOptions, options, 'request options');
    const { signal } = options;
    signal?.throwIfAborted();
    const id = newMessageId();
    // Sealed once before anything goes out: a message too large fails now, not after retries.
    this.#codec.seal({ type, to: target, body: offer, id });

    const call = new PendingRequest(target);
    this.#pending.set(id, call);
    const onAbort = () => call.fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let unsent: unknown;
    let receivers: number | undefined;
    let tries = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        tries = attempt;
        // Every try: the same id (so that any try's answer settles the request, and the
        // receiver runs it once), a fresh timestamp and signature (so it is not stale).
        const { payload } = this.#codec.seal({ type, to: target, body: offer, id });
        unsent = undefined;
        try {
          receivers = await this.transmit(target, payload);
        } catch (error) {
          unsent = error;
          this.transportError('request', error);
        }
        if (unsent === undefined) await call.wait(timeoutMs);
        if (call.settled || attempt >= attempts) break;
        // An answer to an earlier try that arrives during the back-off still counts.
        await call.wait(backoffMs(attempt));
        if (call.settled) break;
        this.logger.debug(
          { to: target, id, attempt: attempt + 1, attempts, receivers },
          unsent === undefined
            ? 'relay request timed out: retrying'
            : 'relay request not sent: retrying',
        );
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.dispose();
      this.#pending.delete(id);
    }

    if (call.failure !== undefined) throw call.failure;
    const reply = call.reply;
    if (reply !== undefined) this.safeEmit('requestAnswered', type, tries);
    if (reply === undefined) {
      if (unsent !== undefined) {
        throw new SfuError(
          'SERVICE_UNAVAILABLE',
          `could not send the relay ${type} to node ${target} (${(unsent as Error).message}); it is retried when Redis is back`,
          { cause: unsent },
        );
      }
      const hint = receivers === 0 ? ': nothing listens on its channel (is the node running?)' : '';
      throw new SfuError(
        'TIMEOUT',
        `node ${target} did not answer the relay ${type} within ${attempts} tries of ${timeoutMs} ms${hint}`,
      );
    }
    if (reply.type === 'error') {
      const code = isErrorCode(reply.body.code) ? reply.body.code : 'INTERNAL';
      throw new SfuError(code, `node ${target} refused the relay ${type}: ${reply.body.message}`);
    }
    if (reply.body.room !== offer.room || reply.body.linkId !== offer.linkId) {
      throw new SfuError(
        'INTERNAL',
        `node ${target} answered for room ${reply.body.room} link ${reply.body.linkId}, not ${offer.room} link ${offer.linkId}`,
      );
    }
    return reply.body;
  }

  async send<T extends RelayNoticeType>(to: string, type: T, body: RelayNotices[T]): Promise<void> {
    this.#assertRunning();
    const target = this.#checkTarget(to);
    const notice =
      type === 'close'
        ? checkArgument(CloseBody, body, 'relay close')
        : type === 'layers'
          ? checkArgument(LayersBody, body, 'relay layers')
          : undefined;
    if (notice === undefined) throw new SfuError('INVALID_ARGUMENT', `no relay notice ${type}`);
    const { payload } = this.#codec.seal({ type, to: target, body: notice });
    try {
      await this.transmit(target, payload);
    } catch (error) {
      this.transportError('send', error);
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `could not send the relay ${type} to node ${target}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  close(): Promise<void> {
    return this.#life.close(() => this.#close());
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    const closed = new SfuError('CLOSED', `the relay bus of node ${this.nodeId} was closed`);
    for (const call of this.#pending.values()) call.fail(closed);
    for (const entry of this.#answers.values()) {
      clearTimeout(entry.timer);
      entry.controller.abort(closed);
    }
    this.#answers.clear();
    this.#handler = undefined;
    await this.closeTransport();
    this.logger.debug({ nodeId: this.nodeId }, 'relay bus closed');
  }

  // ---- receiving ----------------------------------------------------------------------

  /** Every payload that arrives on this node's channel goes through here. */
  protected receive(raw: string): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    const result = this.#codec.open(raw);
    if (!result.ok) {
      this.#rejected(result);
      const request = result.request;
      if (request !== undefined) {
        // Authentic but unreadable (a node of another version): say so now rather than
        // let the requester wait for its timeouts.
        this.#sendReply(request.from, request.id, {
          type: 'error',
          body: { code: 'BAD_MESSAGE', message: truncate(result.detail) },
        });
      }
      return;
    }
    const message = result.message;
    switch (message.type) {
      case 'offer':
        this.#onRequest(message.from, message.id, message.body);
        return;
      case 'answer':
      case 'error': {
        const call = this.#pending.get(message.replyTo);
        if (call === undefined) {
          this.logger.debug(
            { from: message.from, replyTo: message.replyTo, type: message.type },
            'ignoring a relay reply to a request given up or unknown',
          );
          return;
        }
        if (call.to !== message.from) {
          this.logger.warn(
            { from: message.from, expected: call.to, replyTo: message.replyTo },
            'ignoring a relay reply from a node the request was not sent to',
          );
          return;
        }
        call.deliver({ type: message.type, body: message.body } as Reply);
        return;
      }
      case 'close':
        this.safeEmit('linkClose', message.from, message.body);
        return;
      case 'layers':
        this.safeEmit('linkLayers', message.from, message.body);
        return;
    }
  }

  #onRequest(from: string, id: string, body: OfferBody): void {
    const key = `${from}/${id}`;
    this.#pruneAnswers(Date.now());
    const known = this.#answers.get(key);
    if (known !== undefined) {
      if (known.reply !== undefined) {
        this.logger.debug({ from, id }, 'retry of an answered relay request: same reply again');
        this.#sendReply(from, id, known.reply);
      } else {
        this.logger.debug({ from, id }, 'retry of a relay request still running');
      }
      return;
    }
    const entry: AnswerEntry = {
      from,
      id,
      reply: undefined,
      expires: Number.POSITIVE_INFINITY,
      controller: new AbortController(),
      timer: undefined,
    };
    this.#answers.set(key, entry);
    const handler = this.#handler;
    if (handler === undefined) {
      this.#settle(
        key,
        entry,
        errorReply('SERVICE_UNAVAILABLE', `node ${this.nodeId} takes no relay requests yet`),
      );
      return;
    }
    entry.timer = setTimeout(() => {
      const late = new SfuError(
        'TIMEOUT',
        `node ${this.nodeId} gave up the relay offer after ${HANDLER_DEADLINE_MS} ms`,
      );
      entry.controller.abort(late);
      this.#settle(key, entry, errorReply(late.code, late.message));
    }, HANDLER_DEADLINE_MS);

    let running: Promise<AnswerBody>;
    try {
      running = handler(from, 'offer', body, entry.controller.signal);
    } catch (error) {
      running = Promise.reject(error); // a handler that throws instead of rejecting
    }
    running.then(
      (answer) => {
        const parsed = AnswerBody.safeParse(answer);
        if (
          !parsed.success ||
          parsed.data.room !== body.room ||
          parsed.data.linkId !== body.linkId
        ) {
          const why = parsed.success
            ? `it is for room ${parsed.data.room} link ${parsed.data.linkId}`
            : z.prettifyError(parsed.error);
          this.logger.error({ from, id, why }, 'the relay request handler returned a bad answer');
          this.#settle(key, entry, errorReply('INTERNAL', `node ${this.nodeId} made a bad answer`));
          return;
        }
        this.#settle(key, entry, { type: 'answer', body: parsed.data });
      },
      (error: unknown) => {
        const coded = toSfuError(error);
        if (!(error instanceof SfuError)) {
          this.logger.error({ err: error, from, id }, 'the relay request handler failed');
        }
        this.#settle(key, entry, errorReply(coded.code, coded.message));
      },
    );
  }

  /** Records a request's reply (once) and sends it. */
  #settle(key: string, entry: AnswerEntry, reply: Reply): void {
    if (entry.reply !== undefined || this.#state === 'closed') return;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.expires = Date.now() + ANSWER_CACHE_TTL_MS;
    entry.reply = this.#sendReply(entry.from, entry.id, reply);
    this.#answers.delete(key);
    this.#answers.set(key, entry);
  }

  /**
   * Sends a reply in a new envelope (a new id and timestamp each time: a resent reply must
   * not look like a replay). Returns what was sent: an answer too large for the wire
   * becomes a MESSAGE_TOO_LARGE error.
   */
  #sendReply(to: string, replyTo: string, reply: Reply): Reply {
    let sent = reply;
    let payload: string;
    try {
      payload = this.#codec.seal({ type: reply.type, to, replyTo, body: reply.body }).payload;
    } catch (error) {
      const coded = toSfuError(error);
      this.logger.error({ err: error, to, replyTo }, 'cannot send a relay reply');
      sent = errorReply(coded.code, coded.message);
      payload = this.#codec.seal({ type: sent.type, to, replyTo, body: sent.body }).payload;
    }
    this.transmit(to, payload).catch((error: unknown) => {
      // The requester retries; its retry gets this reply from the cache.
      this.transportError('reply', error);
    });
    return sent;
  }

  #pruneAnswers(now: number): void {
    for (const [key, entry] of this.#answers) {
      if (entry.reply === undefined) continue; // running: kept until it settles
      if (entry.expires > now && this.#answers.size <= MAX_ANSWERS_REMEMBERED) break;
      this.#answers.delete(key);
    }
  }

  #rejected(result: Extract<OpenResult, { ok: false }>): void {
    const { reason, from, detail } = result;
    this.safeEmit('rejected', reason, from);
    this.#rejectLog.log(reason, { reason, from, detail });
  }

  // ---- helpers ------------------------------------------------------------------------

  /** A transport failure: counted and logged; the caller decides what it means. */
  protected transportError(op: string, error: unknown): void {
    if (this.#state === 'closed') return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.safeEmit('redisError', op, err);
    this.logger.debug({ op, err: err.message }, 'relay transport error');
  }

  #checkTarget(to: string): string {
    const target = checkArgument(RelayNodeId, to, 'node id');
    if (target === this.nodeId) {
      throw new SfuError(
        'INVALID_ARGUMENT',
        `node ${to} is this node: a node does not relay to itself`,
      );
    }
    return target;
  }

  #assertRunning(): void {
    if (this.#state === 'closed' || this.#life.closing) {
      throw new InvalidStateError('the relay bus is closed');
    }
    if (this.#state !== 'running') {
      throw new InvalidStateError('the relay bus is not started: await start() first');
    }
  }
}

interface AnswerEntry {
  readonly from: string;
  readonly id: string;
  reply: Reply | undefined;
  expires: number;
  readonly controller: AbortController;
  timer: NodeJS.Timeout | undefined;
}

/** One of our requests: settled by a reply, or failed (closed, aborted). Owns its timer. */
class PendingRequest {
  readonly to: string;
  reply: Reply | undefined;
  failure: unknown;
  settled = false;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  constructor(to: string) {
    this.to = to;
  }

  deliver(reply: Reply): void {
    if (this.settled) return;
    this.settled = true;
    this.reply = reply;
    this.#wake?.();
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.failure = error ?? new SfuError('CLOSED', 'the relay request was aborted');
    this.#wake?.();
  }

  /** Resolves after `ms`, or as soon as the request is settled. */
  wait(ms: number): Promise<void> {
    if (this.settled) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      this.#timer = setTimeout(done, ms);
    });
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake = undefined;
  }
}

function errorReply(code: string, message: string): Reply {
  return { type: 'error', body: { code, message: truncate(message) } };
}

function truncate(text: string, max = 1024): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Exponential back-off with "equal jitter": half of the step fixed, half random. */
function backoffMs(attempt: number): number {
  const step = Math.min(RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return Math.round(step / 2 + Math.random() * (step / 2));
}

/** Validates a caller's argument; a bad one is the caller's bug, reported as INVALID_ARGUMENT. */
function checkArgument<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new SfuError('INVALID_ARGUMENT', `invalid ${what}: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}
