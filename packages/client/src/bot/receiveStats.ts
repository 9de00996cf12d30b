/**
 * The measurement math of a receiving bot: loss from sequence numbers, RFC 3550 jitter and
 * latency percentiles. Pure and synchronous so that unit tests can drive it packet by packet.
 */

/** How far back (in packets) a late packet can still be told apart from a duplicate. */
const SEQ_WINDOW = 4096;

export type SeqResult = 'new' | 'late' | 'duplicate' | 'old';

/** Signed distance from `from` to `to` on the 16-bit sequence circle, in [-32768, 32767]. */
export function seqDelta(from: number, to: number): number {
  return ((to - from + 0x8000) & 0xffff) - 0x8000;
}

/**
 * Counts unique packets and loss for one RTP stream, with 16-bit wraparound, reordering and
 * duplicates (NACK retransmissions arrive with their original sequence number and must count
 * once). Loss = expected (the extended sequence range seen) - unique packets received, as in
 * RFC 3550 appendix A.3. When the sender changes (new SSRC), `restart()` folds the current run
 * into the totals so that the new run's sequence numbers are not compared with the old ones.
 */
export class SequenceTracker {
  #started = false;
  #base = 0;
  #max = 0;
  #unique = 0;
  #doneExpected = 0;
  #doneUnique = 0;
  #seen = new Uint8Array(SEQ_WINDOW);
  /** Packets seen twice (retransmissions of packets that had arrived). */
  duplicates = 0;
  /** Packets that arrived after a later one: gap fills by NACK retransmission or reordering. */
  late = 0;
  /** Packets too far behind to be classified; they count neither as received nor lost. */
  tooOld = 0;

  push(seq: number): SeqResult {
    if (!this.#started) {
      this.#started = true;
      this.#base = seq;
      this.#max = seq;
      this.#unique = 1;
      this.#mark(seq);
      return 'new';
    }
    const ext = this.#max + seqDelta(this.#max % 0x10000, seq & 0xffff);
    if (ext > this.#max) {
      const gap = ext - this.#max;
      if (gap >= SEQ_WINDOW) this.#seen.fill(0);
      else for (let s = this.#max + 1; s < ext; s++) this.#seen[slot(s)] = 0;
      this.#max = ext;
      this.#mark(ext);
      this.#unique++;
      return 'new';
    }
    if (ext <= this.#max - SEQ_WINDOW) {
      this.tooOld++;
      return 'old';
    }
    if (this.#seen[slot(ext)]) {
      this.duplicates++;
      return 'duplicate';
    }
    this.#mark(ext);
    this.#unique++;
    this.late++;
    // A packet from before the first one received widens the expected range.
    if (ext < this.#base) this.#base = ext;
    return 'late';
  }

  /** Starts a new run (the stream's SSRC changed); totals keep the finished runs. */
  restart(): void {
    this.#doneExpected += this.#runExpected();
    this.#doneUnique += this.#unique;
    this.#started = false;
    this.#unique = 0;
    this.#seen.fill(0);
  }

  get received(): number {
    return this.#doneUnique + this.#unique;
  }

  get expected(): number {
    return this.#doneExpected + this.#runExpected();
  }

  get lost(): number {
    return Math.max(0, this.expected - this.received);
  }

  /** Extended highest sequence number of the current run (for tests and debugging). */
  get highest(): number {
    return this.#max;
  }

  #runExpected(): number {
    return this.#started ? this.#max - this.#base + 1 : 0;
  }

  #mark(ext: number): void {
    this.#seen[slot(ext)] = 1;
  }
}

function slot(ext: number): number {
  return ((ext % SEQ_WINDOW) + SEQ_WINDOW) % SEQ_WINDOW;
}

/**
 * RFC 3550 section 6.4.1 interarrival jitter: J += (|D| - J) / 16, where D is the difference of
 * relative transit times of consecutive packets. Fed only with in-order packets, as libwebrtc
 * does, so that a retransmission (old RTP timestamp, late arrival) does not count as jitter.
 */
export class JitterEstimator {
  #jitter = 0;
  #lastArrival: number | undefined;
  #lastTimestamp = 0;

  constructor(readonly clockRate: number) {}

  update(rtpTimestamp: number, arrivalMs: number): void {
    if (this.#lastArrival !== undefined) {
      const arrivalTicks = ((arrivalMs - this.#lastArrival) * this.clockRate) / 1000;
      // Signed 32-bit difference: RTP timestamps wrap at 2^32.
      const tsTicks = (rtpTimestamp - this.#lastTimestamp) | 0;
      const d = Math.abs(arrivalTicks - tsTicks);
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#lastArrival = arrivalMs;
    this.#lastTimestamp = rtpTimestamp >>> 0;
  }

  /** A new sender: its timestamps are unrelated to the old ones. The estimate itself stays. */
  restart(): void {
    this.#lastArrival = undefined;
  }

  get jitterMs(): number {
    return (this.#jitter / this.clockRate) * 1000;
  }
}

/** Nearest-rank percentile of an ascending array: the smallest value with p% at or below it. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  if (p <= 0) return sorted[0] as number;
  const rank = Math.min(n, Math.ceil((p / 100) * n));
  return sorted[rank - 1] as number;
}

export interface LatencySummary {
  p50: number | null;
  p95: number | null;
  p99: number | null;
  mean: number | null;
  samples: number;
}

/**
 * One-way latency samples. All samples are kept up to `capacity` (a million doubles, 8 MB);
 * beyond that a uniform reservoir of that size stands in for the percentiles, while the mean
 * and the count stay exact.
 */
export class LatencyRecorder {
  #samples: Float64Array;
  #size = 0;
  #count = 0;
  #sum = 0;
  readonly #capacity: number;

  constructor(capacity = 1 << 20) {
    this.#capacity = capacity;
    this.#samples = new Float64Array(Math.min(capacity, 1024));
  }

  add(ms: number): void {
    if (!Number.isFinite(ms)) return;
    this.#count++;
    this.#sum += ms;
    if (this.#size < this.#capacity) {
      if (this.#size === this.#samples.length) {
        const grown = new Float64Array(Math.min(this.#capacity, this.#samples.length * 2));
        grown.set(this.#samples);
        this.#samples = grown;
      }
      this.#samples[this.#size++] = ms;
      return;
    }
    // Algorithm R: the n-th sample replaces a random one with probability capacity / n.
    const j = Math.floor(Math.random() * this.#count);
    if (j < this.#capacity) this.#samples[j] = ms;
  }

  get count(): number {
    return this.#count;
  }

  summary(): LatencySummary {
    if (this.#count === 0) return { p50: null, p95: null, p99: null, mean: null, samples: 0 };
    const sorted = this.#samples.slice(0, this.#size).sort();
    return {
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      mean: this.#sum / this.#count,
      samples: this.#count,
    };
  }
}
