import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RtcpHeader, TransportWideCC } from 'werift';
import { decodeTransportFeedback as decode } from './encodeTransportFeedback.fixtures.js';
import { encodeTransportFeedback } from './encodeTransportFeedback.js';

test('a hand-built feedback: wrap of the base, a loss, small, large and negative deltas', () => {
  const t0 = 1_000_000; // 15 * 64 ms + 40 ms
  const packet = encodeTransportFeedback({
    senderSsrc: 1,
    mediaSsrc: 2,
    baseSequence: 65534,
    feedbackCount: 255,
    // 65534, 65535 (lost), 0 one ms later, 1 after 70 ms, 2 arriving before 1 (reordered)
    arrivals: [t0, undefined, t0 + 1_000, t0 + 71_000, t0 + 500],
  });
  const expected = Buffer.from(
    [
      '8fcd0006', // V=2 P=0 FMT=15, PT=205, length 6 (28 bytes)
      '00000001', // sender SSRC
      '00000002', // media source SSRC
      'fffe0005', // base 65534, 5 statuses (65534, 65535, 0, 1, 2)
      '00000fff', // reference time 15 (x 64 ms), feedback count 255
      'd1a0', // two-bit vector: small, lost, small, large, large, (0, 0 unused)
      'a0', // 40 ms after the reference: 160 ticks of 250 us
      '04', // +1 ms
      '0118', // +70 ms: 280 ticks, too many for a byte
      'fee6', // -70.5 ms: -282 ticks
    ].join(''),
    'hex',
  );
  assert.equal(packet.toString('hex'), expected.toString('hex'));
});

test('padding: the P bit and the padding length in the last byte, as libwebrtc does', () => {
  const packet = encodeTransportFeedback({
    senderSsrc: 1,
    mediaSsrc: 2,
    baseSequence: 7,
    feedbackCount: 0,
    arrivals: [64_000 + 250],
  });
  // 20 bytes of header and fields, one run-length chunk, one small delta, one byte of padding.
  assert.equal(
    packet.toString('hex'),
    'af cd 00 05 00000001 00000002 0007 0001 000001 00 2001 01 01'.replaceAll(' ', ''),
  );
});

test('long runs, one-bit vectors and loss runs decode to the arrivals given', () => {
  const arrivals: (number | undefined)[] = [];
  let t = 123_456_789;
  // 20 received 2 ms apart (a run), alternating loss (one-bit vectors), a 3000-packet loss
  // run, a large gap in time, then a mix that needs two-bit vectors.
  const after = (us: number) => {
    t += us;
    return t;
  };
  for (let i = 0; i < 20; i++) arrivals.push(after(2_000));
  for (let i = 0; i < 30; i++) arrivals.push(i % 3 === 0 ? undefined : after(1_000));
  for (let i = 0; i < 3000; i++) arrivals.push(undefined);
  arrivals.push(after(5_000_000));
  for (let i = 0; i < 25; i++) arrivals.push(after(i % 4 === 0 ? 100_000 : 3_333));
  arrivals.push(undefined);
  const packet = encodeTransportFeedback({
    senderSsrc: 0xdeadbeef,
    mediaSsrc: 0xcafebabe,
    baseSequence: 65000,
    feedbackCount: 17,
    arrivals,
  });
  const decoded = decode(packet);
  assert.equal(decoded.senderSsrc, 0xdeadbeef);
  assert.equal(decoded.mediaSsrc, 0xcafebabe);
  assert.equal(decoded.base, 65000);
  assert.equal(decoded.feedbackCount, 17);
  assert.equal(decoded.statusCount, arrivals.length);
  // Arrival times come back at 250 us resolution, with no drift over the whole feedback.
  assert.deepEqual(
    decoded.arrivals,
    arrivals.map((a) => (a === undefined ? undefined : Math.round(a / 250) * 250)),
  );

  // werift's own parser agrees on which packets arrived and on each delta.
  const parsed = TransportWideCC.deSerialize(packet.subarray(4), new RtcpHeader());
  const received = arrivals.filter((a) => a !== undefined).length;
  assert.equal(parsed.recvDeltas.length, received);
  assert.equal(parsed.packetStatusCount, arrivals.length);
});

test('the reference time wraps at 24 bits', () => {
  const packet = encodeTransportFeedback({
    senderSsrc: 1,
    mediaSsrc: 2,
    baseSequence: 0,
    feedbackCount: 0,
    arrivals: [((1 << 24) + 3) * 64_000 + 1_000],
  });
  assert.equal(decode(packet).referenceTicks, 3);
});

test('input out of range is refused', () => {
  const input = { senderSsrc: 1, mediaSsrc: 2, baseSequence: 0, feedbackCount: 0 };
  assert.throws(
    () => encodeTransportFeedback({ ...input, arrivals: [undefined] }),
    /at least one received/,
  );
  assert.throws(
    () => encodeTransportFeedback({ ...input, arrivals: [0, 9_000_000] }),
    /does not fit 16 bits/,
  );
});
