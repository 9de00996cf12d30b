import { InvalidStateError } from './errors.js';

/**
 * Start and close of an object that connects (the Redis connection and its users).
 * Concurrent starts share one attempt, a success is remembered, and a failure is forgotten
 * so that a later start tries again. `close` runs once, after any start in progress has
 * settled (so that the start does not connect behind it); every later call returns the same
 * promise, and a start after it rejects with InvalidStateError.
 */
export class Lifecycle {
  readonly #what: string;
  readonly #start: () => Promise<void>;
  #attempt: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /** @param what the object, for error messages ("the room store") */
  constructor(what: string, start: () => Promise<void>) {
    this.#what = what;
    this.#start = start;
  }

  /** close() was called (it may still be running). */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  start(): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new InvalidStateError(`${this.#what} is closed`));
    }
    this.#attempt ??= this.#start().catch((error: unknown) => {
      this.#attempt = undefined; // a later start() may try again
      throw error;
    });
    return this.#attempt;
  }

  /** Runs `close` once; idempotent. */
  close(close: () => Promise<void>): Promise<void> {
    this.#closing ??= this.#settled().then(close);
    return this.#closing;
  }

  async #settled(): Promise<void> {
    await this.#attempt?.catch(() => {
      // The start failed: its error went to whoever called start(); closing goes on.
    });
  }
}
