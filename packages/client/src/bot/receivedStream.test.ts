import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAudioPayload } from './packetizer.js';
import { ReceivedStream } from './receivedStream.js';

const HEADER = 12;

/** Feeds one opus packet of `payloadSize` bytes that arrives `latencyMs` after it was sent. */
function feed(
  stream: ReceivedStream,
  seq: number,
  arrivalMs: number,
  latencyMs: number,
  payloadSize: number,
): void {
  stream.onPacket(
    {
      ssrc: 7,
      sequenceNumber: seq,
      timestamp: seq * 960,
      headerSize: HEADER,
      payload: buildAudioPayload(payloadSize, arrivalMs - latencyMs, seq),
    },
    'opus',
    arrivalMs,
  );
}

/** What takeInterval reports for an interval in which nothing arrived. */
function emptyInterval(intervalMs: number, jitterMs: number) {
  return {
    intervalMs,
    packets: 0,
    bytes: 0,
    bitrateKbps: 0,
    lost: 0,
    expected: 0,
    latencyMs: { mean: null, p50: null, p95: null, max: null },
    latencySamples: 0,
    jitterMs,
    latencyHistogram: {},
  };
}

describe('ReceivedStream.takeInterval', () => {
  it('reports the exact deltas of consecutive intervals', () => {
    const stream = new ReceivedStream('alice', 'audio', 48_000);
    // Interval 1: 100..109 without 103 and 105, 112-byte packets, known latencies.
    const first = [100, 101, 102, 104, 106, 107, 108, 109];
    const firstLatency = [5, 6, 7, 8, 9, 10, 11, 20];
    first.forEach((seq, i) => {
      // Odd packets come 3 ms late against their RTP timestamps: some jitter.
      feed(stream, seq, 1000 + (seq - 100) * 20 + (seq % 2) * 3, firstLatency[i] as number, 100);
    });
    const a = stream.takeInterval(2000);
    assert.deepEqual(a, {
      // From the first packet (1000) to the call.
      intervalMs: 1000,
      packets: 8,
      bytes: 8 * 112,
      // 896 * 8 bits / 1000 ms = 7.168, rounded to two decimals.
      bitrateKbps: 7.17,
      lost: 2,
      expected: 10,
      latencyMs: { mean: 9.5, p50: 8, p95: 20, max: 20 },
      latencySamples: 8,
      jitterMs: stream.stats().jitterMs,
      // 0.5 ms buckets keyed by their lower edge.
      latencyHistogram: { 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1, 20: 1 },
    });
    assert.ok(a.jitterMs > 0);

    // Interval 2: 103 retransmitted late, then 110..115 without 112 and 113, 212-byte packets.
    feed(stream, 103, 2100, 150, 200);
    const second: [number, number][] = [
      [110, 4],
      [111, 4],
      [114, 6],
      [115, 6],
    ];
    for (const [seq, latency] of second) feed(stream, seq, 2000 + (seq - 100) * 20, latency, 200);
    const b = stream.takeInterval(2500);
    assert.deepEqual(b, {
      intervalMs: 500,
      packets: 5,
      bytes: 5 * 212,
      bitrateKbps: 16.96,
      // Cumulative loss 2 -> 3: 112 and 113 opened, 103 filled.
      lost: 1,
      expected: 6,
      latencyMs: { mean: 34, p50: 6, p95: 150, max: 150 },
      latencySamples: 5,
      jitterMs: stream.stats().jitterMs,
      latencyHistogram: { 4: 2, 6: 2, 150: 1 },
    });

    // Interval 3: nothing arrived.
    const c = stream.takeInterval(3500);
    assert.deepEqual(c, emptyInterval(1000, b.jitterMs));

    // Interval 4: a retransmission fills a gap of interval 2: loss goes back by one.
    feed(stream, 112, 3600, 300, 200);
    const d = stream.takeInterval(4000);
    assert.equal(d.packets, 1);
    assert.equal(d.expected, 0);
    assert.equal(d.lost, -1);
    assert.deepEqual(d.latencyMs, { mean: 300, p50: 300, p95: 300, max: 300 });

    // The cumulative stats are untouched and equal the sums of the intervals.
    const s = stream.stats();
    const all = [a, b, c, d];
    const sum = (f: (x: (typeof all)[number]) => number) => all.reduce((n, x) => n + f(x), 0);
    for (const key of ['packets', 'bytes', 'lost', 'expected'] as const) {
      assert.equal(
        s[key],
        sum((x) => x[key]),
      );
    }
    assert.equal(s.latencySamples, 14);
    assert.equal(s.packets, 14);
    assert.equal(s.lost, 2);
    assert.equal(s.firstPacketAtMs, 1000);
  });

  it('gives zeros and nulls before any packet', () => {
    const stream = new ReceivedStream('bob', 'video', 90_000);
    assert.deepEqual(stream.takeInterval(5000), emptyInterval(0, 0));
    // The next interval starts at that call, not at the first packet.
    feed(stream, 1, 5500, 10, 100);
    const next = stream.takeInterval(6000);
    assert.equal(next.intervalMs, 1000);
    assert.equal(next.packets, 1);
    assert.equal(next.bitrateKbps, 0.9); // 0.896 rounded
  });
});
