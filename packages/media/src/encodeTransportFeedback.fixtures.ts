/**
 * A strict decoder of transport-wide CC feedback, written from the draft
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1) independently of the
 * encoder, for tests: it asserts every rule a reader such as Chrome's relies on.
 */
import assert from 'node:assert/strict';

/** What a reader of the draft gets out of a feedback packet (independent of the encoder). */
export interface DecodedFeedback {
  padding: number;
  senderSsrc: number;
  mediaSsrc: number;
  base: number;
  statusCount: number;
  referenceTicks: number;
  feedbackCount: number;
  /** 0 not received, 1 small delta, 2 large delta, per sequence number from the base. */
  statuses: number[];
  /** Arrival times in us rebuilt from the reference time and the deltas, undefined if lost. */
  arrivals: (number | undefined)[];
}

/** Decodes per draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1, strictly. */
export function decodeTransportFeedback(packet: Buffer): DecodedFeedback {
  assert.equal(packet.length % 4, 0, 'RTCP packets are 32-bit aligned');
  assert.equal((packet[0] as number) & 0xc0, 0x80, 'version 2');
  assert.equal((packet[0] as number) & 0x1f, 15, 'FMT 15');
  assert.equal(packet[1], 205, 'PT 205 (RTPFB)');
  assert.equal((packet.readUInt16BE(2) + 1) * 4, packet.length, 'length field');
  const padding = (packet[0] as number) & 0x20 ? (packet[packet.length - 1] as number) : 0;
  const end = packet.length - padding;
  const statusCount = packet.readUInt16BE(14);
  const statuses: number[] = [];
  let offset = 20;
  while (statuses.length < statusCount) {
    const chunk = packet.readUInt16BE(offset);
    offset += 2;
    if ((chunk & 0x8000) === 0) {
      const symbol = (chunk >> 13) & 0x3;
      const run = chunk & 0x1fff;
      assert.ok(run > 0, 'a run is not empty');
      for (let i = 0; i < run; i++) statuses.push(symbol);
    } else if ((chunk & 0x4000) === 0) {
      for (let i = 13; i >= 0; i--) statuses.push((chunk >> i) & 0x1);
    } else {
      for (let i = 6; i >= 0; i--) statuses.push((chunk >> (2 * i)) & 0x3);
    }
  }
  // Symbols beyond the count (the rest of the last vector) are padding and must be zero.
  assert.ok(statuses.slice(statusCount).every((s) => s === 0));
  statuses.length = statusCount;
  const referenceTicks = packet.readUIntBE(16, 3);
  let time = referenceTicks * 64_000;
  const arrivals = statuses.map((status) => {
    if (status === 0) return undefined;
    assert.notEqual(status, 3, 'no "received without delta" here');
    const delta = status === 1 ? packet.readUInt8(offset) : packet.readInt16BE(offset);
    offset += status === 1 ? 1 : 2;
    time += delta * 250;
    return time;
  });
  assert.ok(offset <= end, 'the deltas fit the packet');
  assert.ok(end - offset < 4, 'no trailing bytes beyond alignment');
  return {
    padding,
    senderSsrc: packet.readUInt32BE(4),
    mediaSsrc: packet.readUInt32BE(8),
    base: packet.readUInt16BE(12),
    statusCount,
    referenceTicks,
    feedbackCount: packet.readUInt8(19),
    statuses,
    arrivals,
  };
}
