/**
 * Which NACKed packets go out again toward one subscriber.
 *
 * werift's sender resends every packet a NACK names, each time it is named. Chrome asks again
 * for a missing packet every round trip, up to ten times, so behind a bottleneck that already
 * drops, each loss came back as up to ten retransmissions, and those were dropped too: a
 * subscriber behind a 600 kbit/s token bucket, estimated at 400 kbit/s and sent 380 kbit/s of
 * media, got 1.3 Mbit/s offered and 55 % of it dropped, for the rest of the call (the pacer
 * drains a queue older than MAX_QUEUE_MS, so it passed the storm on). libwebrtc's sender
 * limits both, and so does this:
 *
 * - a packet is sent again at most once per round trip (plus 5 ms): a NACK that comes before
 *   the last retransmission could have arrived asks for what is already on its way;
 * - retransmissions spend at most RETRANSMIT_SHARE of the estimate, over the last second.
 *   Media is allocated within the estimate and paced at PACING_FACTOR times it, so what is
 *   resent stays within the pacer's rate instead of queueing behind it.
 *
 * A packet is a retransmission when its sequence number is not newer than the highest sent
 * on its SSRC (toward subscribers there is no RTX stream: werift resends on the media SSRC).
 */

/** The share of the estimate that retransmissions may use, per RETRANSMIT_WINDOW_MS. */
export const RETRANSMIT_SHARE = 0.25;
const RETRANSMIT_WINDOW_MS = 1_000;
/** Added to the round trip before a packet may be resent again (libwebrtc's margin). */
const RESEND_MARGIN_MS = 5;
/** The round trip assumed until the sender has measured one. */
const DEFAULT_RTT_MS = 100;
/** Resend times are forgotten after this long (a NACK is not repeated for longer). */
const RESENT_MEMORY_MS = 1_000;
/** Per SSRC, resend times are pruned when this many are kept. */
const RESENT_PRUNE_AT = 512;

interface Stream {
  highest: number;
  /** Sequence number -> when it was last sent again. */
  resent: Map<number, number>;
}

export type RetransmitVerdict = 'resent' | 'too-soon' | 'over-budget';

export class RetransmissionGate {
  readonly #streams = new Map<number, Stream>();
  readonly #window: { at: number; bytes: number }[] = [];
  #windowBytes = 0;
  #resent = 0;
  #skipped = 0;

  /** Retransmissions let through so far. */
  get resent(): number {
    return this.#resent;
  }

  /** NACKed packets not sent again (too soon after the last time, or over the budget). */
  get skipped(): number {
    return this.#skipped;
  }

  /**
   * Every packet about to be sent, in order: false for media (newer than anything sent on its
   * SSRC, which it becomes the highest of), true for a packet sent before.
   */
  isRetransmission(ssrc: number, seq: number): boolean {
    const stream = this.#streams.get(ssrc);
    if (!stream) {
      this.#streams.set(ssrc, { highest: seq, resent: new Map() });
      return false;
    }
    const ahead = (seq - stream.highest) & 0xffff;
    if (ahead !== 0 && ahead < 0x8000) {
      stream.highest = seq;
      return false;
    }
    return true;
  }

  /**
   * Whether a retransmission goes out (`resent`) or is dropped (`too-soon`, `over-budget`).
   * @param bytes its size on the wire
   * @param rttMs the subscriber's round trip, when known
   * @param estimateBps the estimate toward the subscriber, when there is one (no budget without)
   */
  admit(
    ssrc: number,
    seq: number,
    bytes: number,
    nowMs: number,
    rttMs: number | undefined,
    estimateBps: number | undefined,
  ): RetransmitVerdict {
    const stream = this.#streams.get(ssrc);
    const last = stream?.resent.get(seq);
    if (last !== undefined && nowMs - last < (rttMs ?? DEFAULT_RTT_MS) + RESEND_MARGIN_MS) {
      this.#skipped++;
      return 'too-soon';
    }
    this.#expire(nowMs);
    const budgetBytes =
      (RETRANSMIT_SHARE * (estimateBps ?? Number.POSITIVE_INFINITY) * RETRANSMIT_WINDOW_MS) / 8_000;
    if (this.#windowBytes + bytes > budgetBytes) {
      this.#skipped++;
      return 'over-budget';
    }
    this.#window.push({ at: nowMs, bytes });
    this.#windowBytes += bytes;
    if (stream) {
      stream.resent.set(seq, nowMs);
      if (stream.resent.size > RESENT_PRUNE_AT) {
        for (const [s, at] of stream.resent)
          if (nowMs - at > RESENT_MEMORY_MS) stream.resent.delete(s);
      }
    }
    this.#resent++;
    return 'resent';
  }

  /** Forgets an SSRC (its sender left the transport). */
  forget(ssrc: number): void {
    this.#streams.delete(ssrc);
  }

  #expire(nowMs: number): void {
    while (
      this.#window.length > 0 &&
      nowMs - (this.#window[0]?.at ?? nowMs) >= RETRANSMIT_WINDOW_MS
    ) {
      this.#windowBytes -= this.#window.shift()?.bytes ?? 0;
    }
  }
}
