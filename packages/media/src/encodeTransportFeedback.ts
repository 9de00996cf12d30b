/**
 * The transport-wide congestion control feedback packet (draft-holmer-rmcat-transport-wide-cc-
 * extensions-01 section 3.1), encoded the way libwebrtc encodes it, since Chrome's sender is
 * what reads it:
 *
 *   RTCP header (V=2, FMT=15, PT=205), sender SSRC, media source SSRC,
 *   base sequence number (16), packet status count (16), reference time (24, signed, in
 *   64 ms), feedback packet count (8), packet status chunks (16 bits each), receive deltas
 *   (8 bits unsigned for 0..63.75 ms, 16 bits signed for -8192..8191.75 ms; in 250 us),
 *   then RTCP padding (P bit, last byte = padding length) to a multiple of 4 bytes.
 */

/** Packet status symbols. */
const NOT_RECEIVED = 0;
const SMALL_DELTA = 1;
const LARGE_DELTA = 2;

/** Microseconds per delta tick and per reference-time tick. */
export const DELTA_TICK_US = 250;
export const REFERENCE_TICK_US = 64_000;
/** The reference time counts 64 ms ticks in 24 bits and wraps. */
const REFERENCE_TICKS_PER_WRAP = 1 << 24;

const MAX_RUN_LENGTH = 0x1fff;
const ONE_BIT_CAPACITY = 14;
const TWO_BIT_CAPACITY = 7;

/** A large delta is a signed 16-bit count of 250 us ticks. */
export const MIN_DELTA_TICKS = -0x8000;
export const MAX_DELTA_TICKS = 0x7fff;

/** At most this many packet statuses in one feedback (the field is 16 bits). */
export const MAX_STATUS_COUNT = 0xffff;

export interface TransportFeedbackInput {
  senderSsrc: number;
  mediaSsrc: number;
  /** Transport-wide sequence number (16 bits) of `arrivals[0]`. */
  baseSequence: number;
  /** The feedback packet count (8 bits, wraps), one more for every feedback sent. */
  feedbackCount: number;
  /**
   * Arrival time in microseconds (any monotonic clock) of each sequence number from the base
   * on, `undefined` for one that has not arrived. At least one must have arrived: the first
   * arrival sets the reference time (the base itself may be a lost packet, as in libwebrtc).
   */
  arrivals: readonly (number | undefined)[];
}

/** The reference time tick that a feedback whose first arrival is at `firstUs` uses. */
export function referenceTicks(firstUs: number): number {
  return Math.floor(firstUs / REFERENCE_TICK_US);
}

/** The arrival time in whole delta ticks, the resolution every delta is taken at. */
export function deltaTicks(us: number): number {
  return Math.round(us / DELTA_TICK_US);
}

/**
 * Encodes one feedback packet. Deltas are taken between rounded absolute times (not rounded
 * one by one), so that rounding never accumulates into a drift the sender would read as
 * queueing delay. Throws a RangeError when a delta does not fit 16 bits or the input is out
 * of range: the caller splits its feedback before that (see `TwccFeedback`).
 */
export function encodeTransportFeedback(input: TransportFeedbackInput): Buffer {
  const { arrivals } = input;
  const first = arrivals.find((a) => a !== undefined);
  if (first === undefined) throw new RangeError('a feedback reports at least one received packet');
  if (arrivals.length > MAX_STATUS_COUNT) {
    throw new RangeError(`at most ${MAX_STATUS_COUNT} packet statuses in one feedback`);
  }
  const reference = referenceTicks(first);
  // Where the deltas start: the reference time, in delta ticks (64 ms = 256 ticks).
  let previous = reference * (REFERENCE_TICK_US / DELTA_TICK_US);
  const symbols: number[] = [];
  const deltas: number[] = [];
  for (const arrival of arrivals) {
    if (arrival === undefined) {
      symbols.push(NOT_RECEIVED);
      continue;
    }
    const ticks = deltaTicks(arrival);
    const delta = ticks - previous;
    previous = ticks;
    if (delta < MIN_DELTA_TICKS || delta > MAX_DELTA_TICKS) {
      throw new RangeError(`a receive delta of ${delta * DELTA_TICK_US} us does not fit 16 bits`);
    }
    symbols.push(delta >= 0 && delta <= 0xff ? SMALL_DELTA : LARGE_DELTA);
    deltas.push(delta);
  }

  const chunks = encodeChunks(symbols);
  const deltaBytes = deltas.reduce((sum, d) => sum + (d >= 0 && d <= 0xff ? 1 : 2), 0);
  const unpadded = 4 + 16 + chunks.length * 2 + deltaBytes;
  const padding = (4 - (unpadded % 4)) % 4;
  const buffer = Buffer.alloc(unpadded + padding);
  // V=2, P, FMT=15; PT=205 (RTPFB); length in 32-bit words minus one.
  buffer.writeUInt8(0x80 | (padding > 0 ? 0x20 : 0) | 15, 0);
  buffer.writeUInt8(205, 1);
  buffer.writeUInt16BE(buffer.length / 4 - 1, 2);
  buffer.writeUInt32BE(input.senderSsrc >>> 0, 4);
  buffer.writeUInt32BE(input.mediaSsrc >>> 0, 8);
  buffer.writeUInt16BE(input.baseSequence & 0xffff, 12);
  buffer.writeUInt16BE(arrivals.length, 14);
  const wrapped =
    ((reference % REFERENCE_TICKS_PER_WRAP) + REFERENCE_TICKS_PER_WRAP) % REFERENCE_TICKS_PER_WRAP;
  buffer.writeUIntBE(wrapped, 16, 3);
  buffer.writeUInt8(input.feedbackCount & 0xff, 19);
  let offset = 20;
  for (const chunk of chunks) {
    buffer.writeUInt16BE(chunk, offset);
    offset += 2;
  }
  for (const delta of deltas) {
    if (delta >= 0 && delta <= 0xff) {
      buffer.writeUInt8(delta, offset);
      offset += 1;
    } else {
      buffer.writeInt16BE(delta, offset);
      offset += 2;
    }
  }
  if (padding > 0) buffer.writeUInt8(padding, buffer.length - 1);
  return buffer;
}

/**
 * Packet status chunks for the symbols: a run-length chunk (T=0, 2-bit symbol, 13-bit run)
 * for a run of 7 or more equal symbols or the last run, otherwise a status vector chunk (T=1)
 * of 14 one-bit symbols when none is a large delta, else of 7 two-bit symbols. A vector at
 * the end may hold fewer symbols than it has room for: the packet status count tells the
 * reader where to stop, and the unused symbols are zero.
 */
function encodeChunks(symbols: readonly number[]): number[] {
  const chunks: number[] = [];
  let i = 0;
  while (i < symbols.length) {
    const symbol = symbols[i] as number;
    let run = 1;
    while (i + run < symbols.length && symbols[i + run] === symbol && run < MAX_RUN_LENGTH) run++;
    if (run >= TWO_BIT_CAPACITY || i + run === symbols.length) {
      chunks.push((symbol << 13) | run);
      i += run;
      continue;
    }
    const window = symbols.slice(i, i + ONE_BIT_CAPACITY);
    if (!window.includes(LARGE_DELTA)) {
      let chunk = 0x8000; // T=1, S=0: one-bit symbols
      window.forEach((s, k) => {
        chunk |= s << (ONE_BIT_CAPACITY - 1 - k);
      });
      chunks.push(chunk);
      i += window.length;
      continue;
    }
    const pairs = symbols.slice(i, i + TWO_BIT_CAPACITY);
    let chunk = 0xc000; // T=1, S=1: two-bit symbols
    pairs.forEach((s, k) => {
      chunk |= s << (2 * (TWO_BIT_CAPACITY - 1 - k));
    });
    chunks.push(chunk);
    i += pairs.length;
  }
  return chunks;
}
