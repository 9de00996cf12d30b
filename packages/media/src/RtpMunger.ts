/**
 * Rewrites sequence numbers and timestamps of one outgoing stream whose source changes: a
 * subscriber receives one SSRC while the forwarder moves between simulcast layers, each with
 * its own SSRC, sequence numbers and timestamp origin. After a switch the new source's
 * numbers are offset so that they continue where the last forwarded packet ended; packets of
 * the old source, and packets of the new one older than the switching point, are dropped, as
 * are duplicates: the subscriber never sees a sequence number twice or go back across a
 * switch. Gaps inside one source are kept (the subscriber NACKs them, and a retransmission
 * from the publisher fills them with the same mapping).
 *
 * `map` is on the packet path: no allocation, results in `outSequenceNumber`/`outTimestamp`.
 */

/** How far behind the highest sequence number a late packet is still forwarded. */
export const REORDER_WINDOW = 512;

/** Signed distance a - b between two 16-bit sequence numbers (RFC 1982 serial arithmetic). */
export function seqDiff(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

export class RtpMunger {
  readonly #clockRate: number;
  #source: number | undefined;
  #seqOffset = 0;
  #tsOffset = 0;
  /** The first input sequence number of the current source. */
  #startSeq = 0;
  /** The highest input sequence number of the current source. */
  #highestIn = 0;
  /** Which input sequence numbers near `#highestIn` were forwarded (by seq % window). */
  readonly #seen = new Uint8Array(REORDER_WINDOW);
  #started = false;
  #lastOutSeq = 0;
  #lastOutTs = 0;
  #lastOutAtMs = 0;
  /** Output of the last successful `map`. */
  outSequenceNumber = 0;
  outTimestamp = 0;

  /** @param clockRate the codec's RTP clock (90000 for video), to carry time across a switch. */
  constructor(clockRate: number) {
    if (!(clockRate > 0)) throw new TypeError(`clockRate must be positive, got ${clockRate}`);
    this.#clockRate = clockRate;
  }

  /** True while outputs equal inputs (before the first switch that moved an origin). */
  get identity(): boolean {
    return this.#seqOffset === 0 && this.#tsOffset === 0;
  }

  /** The SSRC being forwarded, undefined before the first switch. */
  get source(): number | undefined {
    return this.#source;
  }

  /**
   * Forwards from `ssrc` from the packet (`sequenceNumber`, `timestamp`) on, which must be
   * the first packet of a keyframe. Its timestamp continues the previous source's last one
   * plus the wall-clock time since that was sent (at least one tick), so the decoder's clock
   * keeps running at the right pace.
   */
  switchTo(ssrc: number, sequenceNumber: number, timestamp: number, nowMs: number): void {
    if (this.#started) {
      this.#seqOffset = (this.#lastOutSeq + 1 - sequenceNumber) & 0xffff;
      const elapsed = Math.max(
        1,
        Math.round(((nowMs - this.#lastOutAtMs) * this.#clockRate) / 1000),
      );
      this.#tsOffset = (this.#lastOutTs + elapsed - timestamp) >>> 0;
    }
    this.#source = ssrc;
    this.#startSeq = sequenceNumber;
    this.#highestIn = (sequenceNumber - 1) & 0xffff;
    this.#seen.fill(0);
  }

  /**
   * Maps one packet of `ssrc`; false when it must not be forwarded (another source, older
   * than the switch, too late, or a duplicate).
   */
  map(ssrc: number, sequenceNumber: number, timestamp: number, nowMs: number): boolean {
    if (ssrc !== this.#source) return false;
    if (seqDiff(sequenceNumber, this.#startSeq) < 0) return false;
    const ahead = seqDiff(sequenceNumber, this.#highestIn);
    const slot = sequenceNumber % REORDER_WINDOW;
    if (ahead > 0) {
      if (ahead >= REORDER_WINDOW) this.#seen.fill(0);
      else for (let s = 1; s < ahead; s++) this.#seen[(this.#highestIn + s) % REORDER_WINDOW] = 0;
      this.#highestIn = sequenceNumber;
      // The switching point trails the window: 16-bit serial arithmetic against a fixed
      // start would call every packet from 32768 after it "older" (half of each wrap lost).
      // Anything before the window is dropped below anyway.
      if (seqDiff(sequenceNumber, this.#startSeq) > REORDER_WINDOW) {
        this.#startSeq = (sequenceNumber - REORDER_WINDOW) & 0xffff;
      }
    } else if (ahead <= -REORDER_WINDOW || this.#seen[slot] === 1) {
      return false;
    }
    this.#seen[slot] = 1;
    const outSeq = (sequenceNumber + this.#seqOffset) & 0xffff;
    const outTs = (timestamp + this.#tsOffset) >>> 0;
    if (!this.#started || seqDiff(outSeq, this.#lastOutSeq) > 0) {
      this.#started = true;
      this.#lastOutSeq = outSeq;
      this.#lastOutTs = outTs;
      this.#lastOutAtMs = nowMs;
    }
    this.outSequenceNumber = outSeq;
    this.outTimestamp = outTs;
    return true;
  }
}
