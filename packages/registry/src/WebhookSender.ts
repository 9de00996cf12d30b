import { randomUUID } from 'node:crypto';
import {
  type Logger,
  signWebhook,
  silentLogger,
  TypedEmitter,
  WEBHOOK_SIGNATURE_HEADER,
  type WebhookEvent,
} from '@geosfu/common';

/** Tries of one delivery in all; then it is given up (counted `failed`). */
export const WEBHOOK_MAX_ATTEMPTS = 8;
/** Back-off between tries: 500 ms doubling, capped at 30 s, with jitter (half to all of it). */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** How long one try may take before it counts as failed. */
const REQUEST_TIMEOUT_MS = 5_000;
/**
 * Deliveries waiting (or being retried) at most; past it new events are dropped and counted,
 * so that a receiver that is down for long cannot grow the node's memory without bound.
 */
const MAX_PENDING = 10_000;

export type WebhookResult = 'delivered' | 'retried' | 'failed' | 'dropped';

export type WebhookSenderEvents = {
  /** One try's outcome (`retried`: it failed and will be tried again). */
  attempt: [result: WebhookResult];
};

/** What the caller says; the sender adds the id, the time and its node id. */
export type WebhookInput = Omit<WebhookEvent, 'id' | 'createdAt' | 'nodeId'>;

/**
 * Sends webhook events to every configured URL, each signed (`x-geosfu-signature`, see
 * `signWebhook`) and retried with back-off until the receiver answers 2xx. `send` never waits
 * and never throws: it is called from the node's event handlers, away from the media path.
 * Each event is sent by the one node that owns its fact (the joining node for a join, the
 * reaping node for a dead node's sessions, ...), so the cluster sends it once; a receiver may
 * still see a retry of a delivery whose 2xx was lost, and recognises it by its `id`.
 */
export class WebhookSender extends TypedEmitter<WebhookSenderEvents> {
  readonly #urls: readonly string[];
  readonly #key: string;
  readonly #nodeId: string;
  readonly #logger: Logger;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #requests = new Set<AbortController>();
  #pending = 0;
  #closed = false;

  constructor(options: { urls: readonly string[]; key: string; nodeId: string; logger?: Logger }) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'webhooks' });
    super((event, error) => logger.error({ err: error, event }, 'webhook listener threw'));
    this.#urls = options.urls;
    this.#key = options.key;
    this.#nodeId = options.nodeId;
    this.#logger = logger;
  }

  send(input: WebhookInput): void {
    if (this.#closed) return;
    const event: WebhookEvent = {
      id: `EV_${randomUUID().replace(/-/g, '')}`,
      createdAt: Date.now(),
      nodeId: this.#nodeId,
      ...input,
    };
    const body = JSON.stringify(event);
    for (const url of this.#urls) {
      if (this.#pending >= MAX_PENDING) {
        this.safeEmit('attempt', 'dropped');
        this.#logger.warn({ url, event: event.event }, 'too many webhooks pending: dropped one');
        continue;
      }
      this.#pending++;
      void this.#deliver(url, body, event, 1);
    }
  }

  async #deliver(url: string, body: string, event: WebhookEvent, attempt: number): Promise<void> {
    if (this.#closed) return;
    const controller = new AbortController();
    this.#requests.add(controller);
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let why: string | undefined;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [WEBHOOK_SIGNATURE_HEADER]: signWebhook(this.#key, body),
        },
        body,
        signal: controller.signal,
      });
      await res.body?.cancel();
      if (!res.ok) why = `HTTP ${res.status}`;
    } catch (error) {
      why = (error as Error).message;
    } finally {
      clearTimeout(timer);
      this.#requests.delete(controller);
    }
    if (this.#closed) return;
    if (why === undefined) {
      this.#pending--;
      this.safeEmit('attempt', 'delivered');
      return;
    }
    if (attempt >= WEBHOOK_MAX_ATTEMPTS) {
      this.#pending--;
      this.safeEmit('attempt', 'failed');
      this.#logger.warn({ url, id: event.id, event: event.event, why }, 'webhook given up');
      return;
    }
    this.safeEmit('attempt', 'retried');
    this.#logger.debug({ url, id: event.id, attempt, why }, 'webhook failed: retrying');
    const retry = setTimeout(() => {
      this.#timers.delete(retry);
      void this.#deliver(url, body, event, attempt + 1);
    }, backoffMs(attempt));
    this.#timers.add(retry);
  }

  /** Stops every retry and request; what was not delivered yet is lost (logged). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    for (const request of this.#requests) request.abort();
    if (this.#pending > 0) this.#logger.warn({ pending: this.#pending }, 'webhooks not delivered');
    this.#timers.clear();
    this.removeAllListeners();
  }
}

function backoffMs(attempt: number): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return Math.round(step / 2 + Math.random() * (step / 2));
}
