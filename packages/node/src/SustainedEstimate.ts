/**
 * The lowest bandwidth estimate of the last `holdMs`: what a subscriber's layer allocator
 * spends. A drop counts at once (the newest sample is in the window), a rise only once the
 * estimate has stayed up for `holdMs`.
 *
 * Why: the estimate toward a subscriber behind a bottleneck wobbles by ±15 % around its mean
 * (seen in Chromium behind a 600 kbit/s tbf: 455-592 kbit/s, mean ~510); a peak above the
 * upgrade margin moved a video up, the larger layer (and its keyframe) overflowed the
 * shaper's queue, the subscriber lost packets and froze, the estimate fell and the video came
 * down again, a second later. An upgrade should follow a capacity that stays, not a sample.
 */
export class SustainedEstimate {
  readonly #holdMs: number;
  /** Samples whose estimate is lower than every later one (a monotonic deque), oldest first. */
  readonly #window: { at: number; bps: number }[] = [];

  constructor(holdMs: number) {
    if (!(holdMs >= 0)) throw new RangeError(`holdMs must be >= 0, got ${holdMs}`);
    this.#holdMs = holdMs;
  }

  /** Adds the estimate at `nowMs` and returns the lowest of the last `holdMs`. */
  update(nowMs: number, bps: number): number {
    const w = this.#window;
    while (w.length > 0 && (w.at(-1)?.bps ?? 0) >= bps) w.pop();
    w.push({ at: nowMs, bps });
    while (w.length > 1 && (w[0]?.at ?? nowMs) < nowMs - this.#holdMs) w.shift();
    return w[0]?.bps ?? bps;
  }

  /** Forgets every sample (the estimate went away). */
  reset(): void {
    this.#window.length = 0;
  }
}
