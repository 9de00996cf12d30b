import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REORDER_WINDOW, RtpMunger, seqDiff } from './RtpMunger.js';

test('seqDiff is serial arithmetic over 16 bits', () => {
  assert.equal(seqDiff(5, 3), 2);
  assert.equal(seqDiff(3, 5), -2);
  assert.equal(seqDiff(0, 65535), 1);
  assert.equal(seqDiff(65535, 0), -1);
});

/** One simulcast layer: its own SSRC, sequence and timestamp origin, 30 fps at 90 kHz. */
function layer(ssrc: number, seq: number, ts: number) {
  return {
    ssrc,
    next(packets: number) {
      const out: { ssrc: number; seq: number; ts: number }[] = [];
      for (let i = 0; i < packets; i++) {
        out.push({ ssrc, seq: seq & 0xffff, ts: ts >>> 0 });
        seq++;
        if (i % 3 === 2) ts += 3000; // three packets a frame
      }
      return out;
    },
  };
}

test('25 forced switches between three layers: one continuous sequence, timestamps that go on', () => {
  const layers = [layer(111, 65_000, 4_294_000_000), layer(222, 100, 50), layer(333, 30_000, 7)];
  const m = new RtpMunger(90_000);
  let now = 1_000;
  let lastSeq: number | undefined;
  let lastTs: number | undefined;
  let forwarded = 0;
  for (let s = 0; s < 25; s++) {
    const current = layers[s % 3];
    assert.ok(current);
    const packets = current.next(30);
    const first = packets[0];
    assert.ok(first);
    m.switchTo(current.ssrc, first.seq, first.ts, now);
    // Packets of the other layers keep arriving after the switch: none gets through.
    for (const other of layers.filter((l) => l !== current))
      for (const p of other.next(3)) assert.equal(m.map(p.ssrc, p.seq, p.ts, now), false);
    for (const p of packets) {
      now += 11;
      assert.equal(m.map(p.ssrc, p.seq, p.ts, now), true);
      if (lastSeq !== undefined) assert.equal(m.outSequenceNumber, (lastSeq + 1) & 0xffff);
      if (lastTs !== undefined) {
        const step = (m.outTimestamp - lastTs) >>> 0;
        assert.ok(step < 90_000, `timestamps move forward by less than a second (${step})`);
      }
      lastSeq = m.outSequenceNumber;
      lastTs = m.outTimestamp;
      forwarded++;
    }
  }
  assert.equal(forwarded, 750);
});

test('across a switch the timestamp advances by the wall-clock time since the last packet', () => {
  const m = new RtpMunger(90_000);
  m.switchTo(1, 10, 1_000, 0);
  assert.ok(m.map(1, 10, 1_000, 0));
  m.switchTo(2, 500, 77, 100);
  assert.ok(m.map(2, 500, 77, 100));
  assert.equal(m.outSequenceNumber, 11);
  assert.equal(m.outTimestamp, 1_000 + 9_000, '100 ms at 90 kHz');
});

test('drops duplicates and packets older than the switch; keeps late packets of the source', () => {
  const m = new RtpMunger(48_000);
  m.switchTo(7, 1_000, 0, 0);
  assert.ok(m.map(7, 1_000, 0, 0));
  assert.ok(m.map(7, 1_002, 960, 0), 'a gap is kept');
  assert.equal(m.outSequenceNumber, 1_002);
  assert.ok(m.map(7, 1_001, 0, 0), 'the late packet fills it');
  assert.equal(m.outSequenceNumber, 1_001);
  assert.equal(m.map(7, 1_001, 0, 0), false, 'a duplicate');
  assert.equal(m.map(7, 999, 0, 0), false, 'older than the switching point');
  assert.ok(m.map(7, (1_002 + REORDER_WINDOW + 5) & 0xffff, 0, 0));
  assert.equal(m.map(7, 1_003, 0, 0), false, 'too late: behind the reorder window');
});

test('within one source the mapping crosses the 16-bit wrap', () => {
  const m = new RtpMunger(90_000);
  m.switchTo(9, 65_534, 0, 0);
  const out = [65_534, 65_535, 0, 1].map((seq) => {
    assert.ok(m.map(9, seq, 0, 0));
    return m.outSequenceNumber;
  });
  assert.deepEqual(out, [65_534, 65_535, 0, 1]);
});

test('a source forwarded for more than 32768 packets keeps going across sequence wraps', () => {
  const m = new RtpMunger(90_000);
  const source = layer(444, 60_000, 1_000);
  const packets = source.next(140_000);
  const first = packets[0];
  assert.ok(first);
  m.switchTo(444, first.seq, first.ts, 0);
  let dropped = 0;
  for (const p of packets) if (!m.map(p.ssrc, p.seq, p.ts, 0)) dropped++;
  assert.equal(dropped, 0);
  // Still a duplicate and a packet from before the window are refused.
  const last = packets.at(-1);
  assert.ok(last);
  assert.equal(m.map(444, last.seq, last.ts, 0), false);
  assert.equal(m.map(444, (last.seq - REORDER_WINDOW - 5) & 0xffff, last.ts, 0), false);
});
