/**
 * What a subscriber's layer allocator reads of the bandwidth estimation toward that
 * subscriber (one per subscriber transport), and how it asks for more.
 */
export interface BandwidthBudget {
  /** What the subscriber's downlink carries now, bits/s; undefined while nothing is known. */
  readonly estimateBps: number | undefined;
  /**
   * The allocator would move a video up if `targetBps` fitted: the estimator may probe the
   * path up to that rate (a short burst) to find out sooner than its slow growth would.
   */
  probe(targetBps: number): void;
  /**
   * When a probe last showed that the path carries the rate it was sent at (performance.now()
   * ms): the estimate was measured, not guessed, and may be spent at once.
   */
  readonly provenAt: number | undefined;
  /**
   * What the path has been shown to carry, bits/s: what the subscriber acknowledges receiving
   * now, or what a probe measured since the estimate last fell; undefined while nothing is
   * known. A video moves up only within it: while the node sends less than the estimate, the
   * estimate grows (up to 1.5 times what is acknowledged) without anything having tried it.
   */
  readonly shownBps: number | undefined;
}

/** The budget of a subscriber nothing is estimated for: everything fits. */
export const UNLIMITED_BUDGET: BandwidthBudget = Object.freeze({
  estimateBps: undefined,
  probe: () => {},
  provenAt: undefined,
  shownBps: undefined,
});
