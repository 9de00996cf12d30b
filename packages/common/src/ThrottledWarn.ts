import type { Logger } from './logger.js';

/** Default: one warn line per key every 10 s. */
const DEFAULT_INTERVAL_MS = 10_000;

/**
 * A warn line that whoever sends us junk cannot turn into a log flood: the first of each key
 * (a reject reason, say) in an interval goes out at warn with how many were suppressed
 * before it, the rest at debug. For messages that are dropped and counted anyway.
 */
export class ThrottledWarn {
  readonly #logger: Logger;
  readonly #message: string;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Logger, message: string, intervalMs = DEFAULT_INTERVAL_MS) {
    this.#logger = logger;
    this.#message = message;
    this.#intervalMs = intervalMs;
  }

  /** Keys must be few (labels, not ids): one entry per key is kept for good. */
  log(key: string, fields: Record<string, unknown>, now: number = Date.now()): void {
    const last = this.#last.get(key);
    if (last === undefined || now - last.at >= this.#intervalMs) {
      this.#last.set(key, { at: now, suppressed: 0 });
      this.#logger.warn({ ...fields, suppressedBefore: last?.suppressed ?? 0 }, this.#message);
    } else {
      last.suppressed++;
      this.#logger.debug(fields, this.#message);
    }
  }
}
