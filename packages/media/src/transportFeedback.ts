import type { TransportWideCC } from 'werift';
import type { PacketFeedback } from './BandwidthEstimator.js';

/**
 * Packet status symbols (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1.1);
 * 0 is "not received".
 */
const SMALL_DELTA = 1;
const LARGE_DELTA = 2;

/** The reference time field: 24 bits, in multiples of 64 ms. */
const REFERENCE_WRAP = 1 << 24;
const REFERENCE_UNIT_MS = 64;

/**
 * Every packet's fate from one transport-cc feedback packet, as the draft defines it, from the
 * fields werift's parser filled in. werift's own `TransportWideCC.packetResults` cannot be
 * used: it skips status vector chunks (the chunk Chrome sends most), counts a run-length
 * chunk's run one packet too long, does not wrap sequence numbers at 65536, and truncates each
 * receive delta to whole milliseconds (250 µs resolution lost, the error adding up along the
 * packet). Unit-tested against a feedback packet captured from Chromium.
 *
 * `referenceMs` is the packet's reference time in ms, unwrapped by the caller
 * (`unwrapReferenceTime`): arrival times are that plus the running sum of the deltas.
 */
export function transportFeedbackResults(
  feedback: TransportWideCC,
  referenceMs: number,
): PacketFeedback[] {
  const count = feedback.packetStatusCount;
  const symbols: number[] = [];
  for (const chunk of feedback.packetChunks) {
    if (symbols.length >= count) break;
    if ('runLength' in chunk) {
      const n = Math.min(chunk.runLength, count - symbols.length);
      for (let i = 0; i < n; i++) symbols.push(chunk.packetStatus);
    } else {
      // A status vector chunk's last symbols may go past the count: they are padding.
      for (const s of chunk.symbolList) {
        if (symbols.length >= count) break;
        symbols.push(s);
      }
    }
  }
  const results: PacketFeedback[] = [];
  let deltaIndex = 0;
  let arrivalUs = referenceMs * 1000;
  for (let i = 0; i < symbols.length; i++) {
    const sequenceNumber = (feedback.baseSequenceNumber + i) & 0xffff;
    const status = symbols[i];
    if (status !== SMALL_DELTA && status !== LARGE_DELTA) {
      // NOT_RECEIVED, or the reserved symbol 3, which the draft gives no delta either.
      results.push({ sequenceNumber, received: false, receivedAtMs: 0 });
      continue;
    }
    const delta = feedback.recvDeltas[deltaIndex++];
    if (delta?.delta === undefined) break; // truncated packet: the rest is unknown
    arrivalUs += delta.delta;
    results.push({ sequenceNumber, received: true, receivedAtMs: arrivalUs / 1000 });
  }
  return results;
}

/**
 * The reference time of a feedback packet in ms on a clock that does not wrap: `previous` is
 * the last unwrapped value (undefined for the first packet). The field is 24 bits of 64 ms
 * and wraps every 12.4 days; feedback packets may arrive reordered, so the step is taken as
 * the shortest way round.
 */
export function unwrapReferenceTime(previousMs: number | undefined, raw: number): number {
  if (previousMs === undefined) return raw * REFERENCE_UNIT_MS;
  const previousRaw = Math.round(previousMs / REFERENCE_UNIT_MS);
  let step = (raw - previousRaw) % REFERENCE_WRAP;
  if (step < 0) step += REFERENCE_WRAP;
  if (step >= REFERENCE_WRAP / 2) step -= REFERENCE_WRAP;
  return (previousRaw + step) * REFERENCE_UNIT_MS;
}
