import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RTCRtpReceiver, RtpHeader, RtpPacket, useVP8 } from 'werift';
import { fixNackWraparound, preferPassiveDtls, silenceWeriftTwcc } from './weriftFixes.js';

interface Probe {
  nack: { lostSeqNumbers: number[]; addPacket(p: RtpPacket): void; close(): void };
}

/** A real werift receiver, and its (private) NACK handler for inspection. */
function receiver(): { receiver: RTCRtpReceiver; nack: Probe['nack'] } {
  const r = new RTCRtpReceiver({ codecs: { video: [useVP8()] } } as never, 'video', 1);
  return { receiver: r, nack: (r as unknown as Probe).nack };
}

const packet = (seq: number) =>
  new RtpPacket(
    new RtpHeader({ sequenceNumber: seq, ssrc: 42, payloadType: 96 }),
    Buffer.alloc(10),
  );

function feed(r: { nack: Probe['nack'] }, seqs: number[]): number[] {
  for (const s of seqs) r.nack.addPacket(packet(s));
  return [...r.nack.lostSeqNumbers].sort((a, b) => a - b);
}

test('werift alone misses losses after a gap that spans the sequence wrap', () => {
  const r = receiver();
  try {
    // 65535 and 0 are lost; then 5 is lost too.
    const lost = feed(r, [65532, 65533, 65534, 1, 2, 3, 4, 6]);
    assert.deepEqual(
      lost,
      [],
      'unpatched werift detects nothing here (if this fails, werift fixed it: drop the patch)',
    );
  } finally {
    r.nack.close();
  }
});

test('with the fix, losses across the wrap and after it are detected', () => {
  const r = receiver();
  try {
    assert.equal(fixNackWraparound(r.receiver), true);
    const lost = feed(r, [65532, 65533, 65534, 1, 2, 3, 4, 6]);
    assert.deepEqual(lost, [0, 5, 65535]);
    // A retransmission fills its gap; duplicates and old packets change nothing.
    r.nack.addPacket(packet(65535));
    r.nack.addPacket(packet(3));
    assert.deepEqual(
      [...r.nack.lostSeqNumbers].sort((a, b) => a - b),
      [0, 5],
    );
  } finally {
    r.nack.close();
  }
});

test('a huge jump is a new stream, not a burst of thousands of losses', () => {
  const r = receiver();
  try {
    fixNackWraparound(r.receiver);
    assert.deepEqual(feed(r, [100, 101, 20_000, 20_001]), []);
  } finally {
    r.nack.close();
  }
});

test('answers make the ICE-lite node the DTLS server', () => {
  const answer =
    'v=0\r\na=setup:active\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:active\r\na=mid:0\r\n';
  const fixed = preferPassiveDtls(answer);
  assert.equal(fixed.match(/a=setup:passive/g)?.length, 2);
  assert.doesNotMatch(fixed, /a=setup:active/);
  assert.equal(
    preferPassiveDtls('a=setup:actpass\r\n'),
    'a=setup:actpass\r\n',
    'offers are left alone',
  );
});

test('silenceWeriftTwcc keeps werift from starting its own transport-cc feedback', () => {
  const codec = useVP8({ rtcpFeedback: [{ type: 'transport-cc' }] });
  const make = () => {
    const r = new RTCRtpReceiver({ codecs: { video: [codec] } } as never, 'video', 1);
    r.prepareReceive({ codecs: [codec], encodings: [], headerExtensions: [] } as never);
    return r;
  };
  const unpatched = make();
  assert.ok(
    unpatched.twccEnabled,
    'werift enables its generator when transport-cc is negotiated (if not, drop the patch)',
  );
  const r = make();
  try {
    assert.equal(silenceWeriftTwcc(r), true);
    assert.equal(r.twccEnabled, false);
    r.setupTWCC(1234);
    assert.equal(r.receiverTWCC, undefined, 'no generator after the first packet');
  } finally {
    r.stop();
    unpatched.stop();
  }
});
