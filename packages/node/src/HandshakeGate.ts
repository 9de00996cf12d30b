import { SfuError } from '@geosfu/common';

/** A turn at setting up a PeerConnection; give it back when the set-up is over. */
export interface HandshakeSlot {
  /** Idempotent. */
  release(): void;
}

export interface HandshakeGateOptions {
  /** Set-ups in progress at once (SFU_MAX_CONCURRENT_HANDSHAKES). */
  maxConcurrent: number;
  /** How long a set-up may wait for its turn before SERVICE_BUSY (SFU_ADMISSION_TIMEOUT_MS). */
  timeoutMs: number;
  /**
   * A slot not given back after this long is taken back: a client that never completes its
   * handshake must not hold a turn for longer than its PeerConnection may live unconnected.
   */
  holdMs: number;
  /** Each request's wait, in seconds, and whether it was admitted or refused (metrics). */
  onWait?: (seconds: number, result: 'admitted' | 'busy') => void;
}

interface Waiter {
  since: number;
  grant: (slot: HandshakeSlot) => void;
  refuse: (error: SfuError) => void;
  timer: NodeJS.Timeout;
}

/**
 * Admission control for PeerConnection set-ups. A DTLS handshake costs 35-50 ms of CPU in
 * pure JS, on both ends; forty at once on two cores share the CPU so evenly that none of them
 * finishes within the 10 s that clients and the node give a connection, and the event loop
 * stalls for seconds (so does `/metrics`). Bounded concurrency turns that into a queue: a few
 * handshakes run at full speed while the rest wait their turn, first come first served, and
 * only a set-up that waited `timeoutMs` is refused (SERVICE_BUSY).
 */
export class HandshakeGate {
  readonly #options: HandshakeGateOptions;
  readonly #queue: Waiter[] = [];
  #active = 0;
  #closed = false;

  constructor(options: HandshakeGateOptions) {
    if (!(options.maxConcurrent >= 1)) throw new TypeError('maxConcurrent must be at least 1');
    this.#options = options;
  }

  /** Set-ups in progress. */
  get active(): number {
    return this.#active;
  }

  /** Set-ups waiting for their turn. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Resolves with a slot when it is this request's turn; rejects with SERVICE_BUSY after
   * `timeoutMs`, with CLOSED when `signal` aborts (the session ended) or the gate closes.
   */
  acquire(signal?: AbortSignal): Promise<HandshakeSlot> {
    if (this.#closed) return Promise.reject(new SfuError('CLOSED', 'the node is shutting down'));
    if (signal?.aborted) return Promise.reject(new SfuError('CLOSED', 'the session ended'));
    const since = performance.now();
    if (this.#active < this.#options.maxConcurrent && this.#queue.length === 0) {
      this.#options.onWait?.(0, 'admitted');
      return Promise.resolve(this.#slot());
    }
    return new Promise<HandshakeSlot>((resolve, reject) => {
      const leave = () => {
        const i = this.#queue.indexOf(waiter);
        if (i !== -1) this.#queue.splice(i, 1);
        clearTimeout(waiter.timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        leave();
        reject(new SfuError('CLOSED', 'the session ended while waiting for its turn'));
      };
      const waiter: Waiter = {
        since,
        grant: (slot) => {
          leave();
          resolve(slot);
        },
        refuse: (error) => {
          leave();
          reject(error);
        },
        timer: setTimeout(() => {
          this.#options.onWait?.((performance.now() - since) / 1000, 'busy');
          waiter.refuse(
            new SfuError(
              'SERVICE_BUSY',
              `the node is busy setting up other connections and this one waited ${this.#options.timeoutMs} ms; try again shortly or ask /v1/route for another node`,
            ),
          );
        }, this.#options.timeoutMs),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #slot(): HandshakeSlot {
    this.#active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(hold);
      this.#active--;
      this.#next();
    };
    const hold = setTimeout(release, this.#options.holdMs);
    hold.unref();
    return { release };
  }

  #next(): void {
    while (!this.#closed && this.#active < this.#options.maxConcurrent) {
      const waiter = this.#queue[0];
      if (!waiter) return;
      this.#options.onWait?.((performance.now() - waiter.since) / 1000, 'admitted');
      waiter.grant(this.#slot());
    }
  }

  /** Refuses every waiting request; slots given out stay valid until released. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of [...this.#queue])
      waiter.refuse(new SfuError('CLOSED', 'the node is shutting down'));
  }
}
