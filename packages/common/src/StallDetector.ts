/**
 * Any gap between two looks at the clock longer than this is time the process was not
 * running: SIGSTOP, a starved VM, a long GC pause, a blocked event loop. A constant, not a
 * knob: it only has to sit well above the tick and the event-loop lag of a busy but running
 * process (hundreds of ms on a shared machine), and well below any liveness timeout.
 */
export const STALL_THRESHOLD_MS = 1_000;

/** How often the detector looks at the clock by itself, so that idle time is not a stall. */
const TICK_MS = 250;

/**
 * A clock for liveness timers that does not run while the process does not: `now()` advances
 * like `performance.now()`, except that of any gap between two readings longer than
 * STALL_THRESHOLD_MS only the threshold counts.
 *
 * Why: when a stopped node resumes, libuv runs the overdue timers before it reads the sockets,
 * so a heartbeat or RTCP check measured with the wall clock sees the whole stop as the peer's
 * silence and ends a session whose pongs and RTCP are waiting in the socket buffers (issue 20,
 * finding 4). Measured with this clock, the silence is what the peer had before the stall plus
 * at most the threshold, and the buffered packets are read right after. A peer that really
 * died is still ended: the clock only skips the time the node was away, so the window ends
 * at most that much later. Whichever reading comes first after a stall (the detector's own
 * tick or a liveness check) sees the gap, so the order in which timers fire does not matter.
 *
 * One per process, owned by the node; every liveness timer reads it.
 */
export class StallDetector {
  #last = performance.now();
  /** Time not counted: the part of each stall above the threshold. */
  #skipped = 0;
  #stalls = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #onStall: ((stalledMs: number) => void) | undefined;

  /** @param onStall called once per stall with its length in ms (for a log line and a metric). */
  constructor(onStall?: (stalledMs: number) => void) {
    this.#onStall = onStall;
    this.#timer = setInterval(() => this.now(), TICK_MS);
    this.#timer.unref();
  }

  /** Milliseconds of running time; only differences between two readings mean anything. */
  now(): number {
    const now = performance.now();
    const gap = now - this.#last;
    this.#last = now;
    if (gap > STALL_THRESHOLD_MS) {
      this.#skipped += gap - STALL_THRESHOLD_MS;
      this.#stalls++;
      try {
        this.#onStall?.(gap);
      } catch (error) {
        // A failing report must not break the liveness check that happened to read the clock.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    return now - this.#skipped;
  }

  /** Stalls seen so far. */
  get stalls(): number {
    return this.#stalls;
  }

  /** Stops the tick. Readings still work; only an idle gap would then count as a stall. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
