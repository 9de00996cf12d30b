/**
 * What one direction of an emulated link does to a packet: a bottleneck queue (rate limit with
 * tail drop), random or bursty loss, and a one-way delay whose variation is correlated in time
 * and never reorders. Pure: time comes in as an argument and randomness from a seeded
 * generator, so unit tests can replay it packet by packet.
 */
import type { LinkParams } from './profiles.js';

/** Uniform [0, 1). */
export type Random = () => number;

/** A standard normal sample (Box-Muller). */
export function gaussian(random: Random): number {
  let u = 0;
  while (u === 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/**
 * Correlation between consecutive knots of the jitter curve. With linear interpolation between
 * knots, the time-averaged variance is (2 + KNOT_CORRELATION) / 3 of the knots' variance; the
 * knots are scaled up by the inverse so that the curve's standard deviation is `jitterMs`.
 */
const KNOT_CORRELATION = 0.5;
const INTERPOLATED_VARIANCE = (2 + KNOT_CORRELATION) / 3;

/**
 * Delay variation as a continuous curve of time: AR(1) knots every `correlationMs`, joined by
 * straight lines. Packets close together see nearly the same extra delay (as on a real path,
 * where queues build and drain over tens of milliseconds), and the curve's slope is small, so
 * keeping packets in order rarely has to hold one back.
 */
export class JitterCurve {
  readonly #sigma: number;
  readonly #stepMs: number;
  readonly #random: Random;
  #t0 = Number.NaN;
  #v0 = 0;
  #v1 = 0;

  constructor(jitterMs: number, correlationMs: number, random: Random) {
    this.#sigma = jitterMs / Math.sqrt(INTERPOLATED_VARIANCE);
    this.#stepMs = correlationMs;
    this.#random = random;
  }

  /** The extra delay at `nowMs` (times must not go backwards). */
  at(nowMs: number): number {
    if (this.#sigma === 0) return 0;
    if (Number.isNaN(this.#t0)) {
      this.#t0 = nowMs;
      this.#v0 = this.#sigma * gaussian(this.#random);
      this.#v1 = this.#next(this.#v0);
    }
    // Advance the knots; after a long idle spell start afresh instead of looping.
    const steps = Math.floor((nowMs - this.#t0) / this.#stepMs);
    if (steps > 64) {
      this.#t0 = nowMs;
      this.#v0 = this.#sigma * gaussian(this.#random);
      this.#v1 = this.#next(this.#v0);
    } else {
      for (let i = 0; i < steps; i++) {
        this.#t0 += this.#stepMs;
        this.#v0 = this.#v1;
        this.#v1 = this.#next(this.#v0);
      }
    }
    const u = (nowMs - this.#t0) / this.#stepMs;
    return this.#v0 + (this.#v1 - this.#v0) * u;
  }

  #next(v: number): number {
    const rho = KNOT_CORRELATION;
    return rho * v + this.#sigma * Math.sqrt(1 - rho * rho) * gaussian(this.#random);
  }
}

/**
 * Loss: Bernoulli when the mean burst is one packet, otherwise a Gilbert-Elliott channel (a
 * good state that loses nothing and a bad state that loses everything) whose bad state lasts
 * `burstPackets` on average and holds `percent` of the packets in the long run.
 */
export class LossModel {
  readonly #p: number;
  readonly #pGoodToBad: number;
  readonly #pBadToGood: number;
  readonly #bursty: boolean;
  readonly #random: Random;
  #bad = false;

  constructor(percent: number, burstPackets: number, random: Random) {
    this.#p = percent / 100;
    this.#random = random;
    this.#bursty = burstPackets > 1 && this.#p > 0 && this.#p < 1;
    this.#pBadToGood = 1 / burstPackets;
    // Stationary share of the bad state: g2b / (g2b + b2g) = p.
    this.#pGoodToBad = this.#bursty ? (this.#p * this.#pBadToGood) / (1 - this.#p) : 0;
  }

  /** True when this packet is lost. */
  lose(): boolean {
    if (!this.#bursty) return this.#p > 0 && this.#random() < this.#p;
    this.#bad = this.#bad ? this.#random() >= this.#pBadToGood : this.#random() < this.#pGoodToBad;
    return this.#bad;
  }
}

export type Verdict = { drop: 'loss' | 'queue' } | { dueMs: number };

/** One direction of a link. */
export class LinkModel {
  readonly params: LinkParams;
  readonly #jitter: JitterCurve;
  readonly #loss: LossModel;
  /** When the bottleneck finishes sending what it has queued. */
  #busyUntilMs = 0;
  /** Departure of the previous packet: later packets never leave before it (FIFO). */
  #lastDueMs = 0;

  constructor(params: LinkParams, random: Random) {
    this.params = params;
    this.#jitter = new JitterCurve(params.jitterMs, params.jitterCorrelationMs, random);
    this.#loss = new LossModel(params.lossPercent, params.lossBurstPackets, random);
  }

  /** Decides the fate of a packet of `bytes` (IP packet size) arriving at `nowMs`. */
  admit(nowMs: number, bytes: number): Verdict {
    let sentMs = nowMs;
    const rate = this.params.rateKbps;
    if (rate !== undefined) {
      const start = Math.max(nowMs, this.#busyUntilMs);
      if (start - nowMs > this.params.queueMs) return { drop: 'queue' };
      // kbit/s is bits per millisecond.
      this.#busyUntilMs = start + (bytes * 8) / rate;
      sentMs = this.#busyUntilMs;
    }
    if (this.#loss.lose()) return { drop: 'loss' };
    const delay = Math.max(0, this.params.delayMs + this.#jitter.at(sentMs));
    const due = Math.max(sentMs + delay, this.#lastDueMs);
    this.#lastDueMs = due;
    return { dueMs: due };
  }
}
