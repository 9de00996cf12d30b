import { SfuError } from './errors.js';

/**
 * A typed event emitter in the style of mediasoup's EnhancedEventEmitter: the event map is
 * a record of tuples, and a listener that throws is reported instead of breaking the emit
 * loop (one bad listener must not stop a room from telling the others that a track left).
 */
// biome-ignore lint/suspicious/noExplicitAny: the constraint must accept every tuple type
export type EventMap = Record<string, any[]>;

type Listener<A extends unknown[]> = (...args: A) => void;

export class TypedEmitter<E extends EventMap> {
  #listeners = new Map<keyof E, Set<Listener<E[keyof E]>>>();
  #onListenerError: (event: string, error: unknown) => void;

  constructor(onListenerError?: (event: string, error: unknown) => void) {
    this.#onListenerError =
      onListenerError ??
      ((event, error) => {
        // No logger is known here; surface it on the next tick so it is not swallowed.
        queueMicrotask(() => {
          throw new Error(`listener for "${event}" threw`, { cause: error });
        });
      });
  }

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener<E[keyof E]>);
    return () => this.off(event, listener);
  }

  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      listener(...args);
    }) as Listener<E[K]>);
    return off;
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<E[keyof E]>);
  }

  /** Calls every listener; one that throws is reported and the others still run. */
  safeEmit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        this.#onListenerError(String(event), error);
      }
    }
  }

  /**
   * Resolves with the arguments of the next event (that passes `filter`); rejects with TIMEOUT
   * after `timeoutMs`, or with the signal's reason when it aborts.
   */
  waitFor<K extends keyof E>(
    event: K,
    options?: { signal?: AbortSignal; timeoutMs?: number; filter?: (...args: E[K]) => boolean },
  ): Promise<E[K]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const off = this.on(event, ((...args: E[K]) => {
        if (options?.filter && !options.filter(...args)) return;
        off();
        clearTimeout(timer);
        resolve(args);
      }) as Listener<E[K]>);
      if (options?.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          off();
          reject(
            new SfuError('TIMEOUT', `no "${String(event)}" event within ${options.timeoutMs} ms`),
          );
        }, options.timeoutMs);
      }
      options?.signal?.addEventListener(
        'abort',
        () => {
          off();
          clearTimeout(timer);
          reject(options.signal?.reason);
        },
        { once: true },
      );
    });
  }

  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }
}
