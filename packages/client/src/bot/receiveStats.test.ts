import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Vp8Packetizer } from './packetizer.js';
import { PACKET, ReceivedStream } from './receivedStream.js';
import {
  JitterEstimator,
  LatencyRecorder,
  percentile,
  SequenceTracker,
  seqDelta,
} from './receiveStats.js';

function feed(tracker: SequenceTracker, seqs: number[]): string[] {
  return seqs.map((s) => tracker.push(s));
}

describe('seqDelta', () => {
  it('takes the short way round the 16-bit circle', () => {
    assert.equal(seqDelta(10, 12), 2);
    assert.equal(seqDelta(12, 10), -2);
    assert.equal(seqDelta(65_535, 0), 1);
    assert.equal(seqDelta(0, 65_535), -1);
    assert.equal(seqDelta(65_530, 5), 11);
  });
});

describe('SequenceTracker', () => {
  it('counts no loss for an in-order stream', () => {
    const t = new SequenceTracker();
    feed(
      t,
      Array.from({ length: 100 }, (_, i) => 1000 + i),
    );
    assert.equal(t.received, 100);
    assert.equal(t.expected, 100);
    assert.equal(t.lost, 0);
  });

  it('counts a gap across the wraparound as loss', () => {
    const t = new SequenceTracker();
    // 65530..65535, 0..5 without 65533 and 1: 12 expected, 10 received.
    const seqs = [65_530, 65_531, 65_532, 65_534, 65_535, 0, 2, 3, 4, 5];
    assert.deepEqual(
      feed(t, seqs),
      seqs.map(() => 'new'),
    );
    assert.equal(t.expected, 12);
    assert.equal(t.received, 10);
    assert.equal(t.lost, 2);
  });

  it('counts a retransmitted duplicate once and a late gap fill as recovered', () => {
    const t = new SequenceTracker();
    assert.deepEqual(feed(t, [100, 101, 103, 104]), ['new', 'new', 'new', 'new']);
    assert.equal(t.lost, 1);
    // The NACKed packet arrives, then a second retransmission of it, then a duplicate of 104.
    assert.deepEqual(feed(t, [102, 102, 104]), ['late', 'duplicate', 'duplicate']);
    assert.equal(t.lost, 0);
    assert.equal(t.received, 5);
    assert.equal(t.late, 1);
    assert.equal(t.duplicates, 2);
  });

  it('counts duplicates and late packets across the wrap', () => {
    const t = new SequenceTracker();
    feed(t, [65_534, 0, 1]);
    assert.equal(t.lost, 1);
    assert.deepEqual(feed(t, [65_535, 65_535, 0]), ['late', 'duplicate', 'duplicate']);
    assert.equal(t.lost, 0);
    assert.equal(t.highest, 65_537);
  });

  it('widens the range for a reordered packet from before the first one', () => {
    const t = new SequenceTracker();
    feed(t, [5, 6, 3]);
    assert.equal(t.expected, 4);
    assert.equal(t.lost, 1, 'seq 4 is missing');
  });

  it('adds up runs when the sender restarts with unrelated numbers', () => {
    const t = new SequenceTracker();
    feed(t, [10, 11, 13]);
    t.restart();
    feed(t, [40_000, 40_001, 40_003, 40_004]);
    assert.equal(t.expected, 4 + 5);
    assert.equal(t.received, 7);
    assert.equal(t.lost, 2);
  });

  it('survives a gap larger than its window', () => {
    const t = new SequenceTracker();
    feed(t, [0, 1]);
    // A jump of 10 000 (loss of a long burst): window is cleared, later packets still count.
    feed(t, [10_001, 10_002]);
    assert.equal(t.lost, 9_999);
    assert.equal(t.push(10_002), 'duplicate');
    // Something from far behind the window cannot be classified.
    assert.equal(t.push(5), 'old');
    assert.equal(t.received, 4);
  });

  it('tracks long streams over many wraps', () => {
    const t = new SequenceTracker();
    let lostExpected = 0;
    for (let i = 0; i < 200_000; i++) {
      if (i % 997 === 500) {
        lostExpected++;
        continue;
      }
      t.push((60_000 + i) & 0xffff);
    }
    assert.equal(t.expected, 200_000);
    assert.equal(t.lost, lostExpected);
  });
});

describe('JitterEstimator', () => {
  it('is zero when transit time is constant', () => {
    const j = new JitterEstimator(48_000);
    for (let i = 0; i < 50; i++) j.update(960 * i, 5 + 20 * i);
    assert.equal(j.jitterMs, 0);
  });

  it('follows RFC 3550: J += (|D| - J) / 16', () => {
    const j = new JitterEstimator(48_000);
    j.update(0, 0);
    j.update(960, 20);
    j.update(1920, 50); // 10 ms late: |D| = 480 ticks, J = 30 ticks
    assert.equal(j.jitterMs, (30 / 48_000) * 1000);
    j.update(2880, 60); // back on time: D = 10 ms - 20 ms = -480 ticks, J = 30 + 450 / 16
    assert.equal(j.jitterMs, ((30 + 450 / 16) / 48_000) * 1000);
  });

  it('handles the 32-bit timestamp wrap', () => {
    const j = new JitterEstimator(90_000);
    const start = 0xffff_ffff - 3000 * 5;
    for (let i = 0; i < 20; i++) j.update((start + 3000 * i) >>> 0, 1000 + (100 / 3) * i);
    assert.ok(j.jitterMs < 0.001, `jitter ${j.jitterMs} ms across the wrap`);
  });
});

describe('percentile', () => {
  it('uses the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 95), 95);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile(values, 100), 100);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([1, 2, 3], 50), 2);
    assert.equal(percentile([], 50), null);
  });
});

describe('LatencyRecorder', () => {
  it('summarises samples', () => {
    const r = new LatencyRecorder();
    for (const v of [5, 1, 4, 2, 3]) r.add(v);
    assert.deepEqual(r.summary(), { p50: 3, p95: 5, p99: 5, mean: 3, samples: 5 });
    assert.deepEqual(new LatencyRecorder().summary(), {
      p50: null,
      p95: null,
      p99: null,
      mean: null,
      samples: 0,
    });
  });

  it('keeps the mean exact beyond its capacity', () => {
    const r = new LatencyRecorder(100);
    for (let i = 1; i <= 10_000; i++) r.add(i % 2 === 0 ? 10 : 20);
    const s = r.summary();
    assert.equal(s.samples, 10_000);
    assert.equal(s.mean, 15);
    assert.ok(s.p50 === 10 || s.p50 === 20);
  });
});

describe('ReceivedStream', () => {
  it('counts key frames once, ignores duplicates and measures latency', () => {
    const stream = new ReceivedStream('alice', 'video', 90_000);
    const vp8 = new Vp8Packetizer({ maxPayload: 1150 });
    let seq = 65_000;
    const outcomes: number[] = [];
    const sendFrame = (keyframe: boolean, timestamp: number, sendMs: number, arriveMs: number) => {
      for (const payload of vp8.packetize(keyframe ? 20_000 : 4000, keyframe, sendMs, 0)) {
        const packet = { ssrc: 1, sequenceNumber: seq, timestamp, headerSize: 12, payload };
        outcomes.push(stream.onPacket(packet, 'vp8', arriveMs));
        seq = (seq + 1) & 0xffff;
      }
    };
    sendFrame(true, 0, 1000, 1010);
    const keyPackets = outcomes.length;
    sendFrame(false, 3000, 1033, 1043);
    sendFrame(true, 6000, 1066, 1076);
    const s = stream.stats();
    assert.equal(s.keyframes, 2);
    assert.equal(s.firstKeyframeAtMs, 1010);
    assert.equal(s.firstPacketAtMs, 1010);
    assert.equal(s.lastPacketAtMs, 1076);
    assert.equal(
      outcomes[0],
      PACKET.counted | PACKET.firstPacket | PACKET.keyframe | PACKET.firstKeyframe,
    );
    assert.equal(outcomes[keyPackets], PACKET.counted);
    assert.deepEqual(s.latencyMs, { p50: 10, p95: 10, p99: 10, mean: 10 });
    assert.equal(s.lost, 0);
    const bytes = s.bytes;
    // A retransmitted copy of the first key frame packet: not a packet, not a key frame.
    const dup = vp8.packetize(20_000, true, 1000, 0)[0] as Buffer;
    const outcome = stream.onPacket(
      { ssrc: 1, sequenceNumber: 65_000, timestamp: 0, headerSize: 12, payload: dup },
      'vp8',
      1090,
    );
    assert.equal(outcome, 0);
    assert.equal(stream.stats().keyframes, 2);
    assert.equal(stream.stats().bytes, bytes);
    assert.equal(stream.stats().duplicates, 1);
    assert.equal(s.bitrateKbps, Math.round(((bytes * 8) / 66) * 100) / 100);
  });

  it('restarts sequence accounting when the SSRC changes', () => {
    const stream = new ReceivedStream('bob', 'audio', 48_000);
    const payload = Buffer.alloc(50);
    for (const seq of [1, 2, 4]) {
      stream.onPacket(
        { ssrc: 1, sequenceNumber: seq, timestamp: seq * 960, headerSize: 12, payload },
        'opus',
        seq * 20,
      );
    }
    for (const seq of [30_000, 30_001]) {
      stream.onPacket(
        { ssrc: 2, sequenceNumber: seq, timestamp: 0, headerSize: 12, payload },
        'opus',
        100,
      );
    }
    const s = stream.stats();
    assert.equal(s.packets, 5);
    assert.equal(s.lost, 1);
    assert.equal(s.ssrc, 2);
    assert.equal(s.keyframes, 0);
    assert.deepEqual(s.latencyMs, { p50: null, p95: null, p99: null, mean: null });
  });
});
