import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RtpHeader, RtpPacket } from 'werift';
import {
  type DecodedFeedback,
  decodeTransportFeedback,
} from './encodeTransportFeedback.fixtures.js';
import { type FeedbackTransport, TRANSPORT_CC_URI, TwccFeedback } from './TwccFeedback.js';

/** A transport that records what is sent and lets the test deliver RTP. */
function fakeTransport() {
  const sent: DecodedFeedback[] = [];
  let listener: ((rtp: RtpPacket) => void) | undefined;
  const transport: FeedbackTransport = {
    onRtp: {
      subscribe(l) {
        listener = l;
        return {
          unSubscribe: () => {
            listener = undefined;
          },
        };
      },
    },
    async sendRtcp(packets) {
      for (const p of packets) sent.push(decodeTransportFeedback(p.serialize()));
    },
  };
  return {
    transport,
    sent,
    deliver: (rtp: RtpPacket) => listener?.(rtp),
    listening: () => listener !== undefined,
  };
}

function feedback(t: { after(fn: () => void): void }) {
  const fake = fakeTransport();
  const twcc = new TwccFeedback({
    transport: fake.transport,
    extensionUris: { 3: TRANSPORT_CC_URI },
    senderSsrc: 99,
    manual: true,
  });
  t.after(() => twcc.close());
  return { ...fake, twcc };
}

/** Lets the fake transport's sendRtcp promise run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The arrival times of a feedback by sequence number, in ms (undefined: reported lost). */
function bySeq(f: DecodedFeedback): Map<number, number | undefined> {
  return new Map(f.arrivals.map((a, i) => [(f.base + i) & 0xffff, a]));
}

test('reports each packet across the 16-bit wrap, losses included, in order', async (t) => {
  const { twcc, sent } = feedback(t);
  const seqs = [65532, 65533, 65534, 0, 1, 2]; // 65535 lost
  for (const [i, seq] of seqs.entries()) twcc.record(seq, 1234, 10_000_000 + i * 5_000);
  twcc.flush(10_100_000);
  await settle();
  assert.equal(sent.length, 1);
  const [f] = sent as [DecodedFeedback];
  assert.equal(f.base, 65532);
  assert.equal(f.statusCount, 7);
  assert.equal(f.mediaSsrc, 1234);
  assert.equal(f.senderSsrc, 99);
  assert.deepEqual(f.statuses, [1, 1, 1, 0, 1, 1, 1]);
  const times = bySeq(f);
  assert.equal(times.get(65535), undefined);
  assert.equal(times.get(0), 10_015_000);
  assert.equal(times.get(2), 10_025_000);
});

test('the next feedback starts where the last ended: a loss between two is reported', async (t) => {
  const { twcc, sent } = feedback(t);
  twcc.record(100, 1, 1_000_000);
  twcc.record(101, 1, 1_001_000);
  twcc.flush(1_002_000);
  twcc.record(104, 1, 1_050_000); // 102 and 103 lost
  twcc.flush(1_100_000);
  twcc.flush(1_200_000); // nothing new: nothing sent
  await settle();
  assert.equal(sent.length, 2);
  const second = sent[1] as DecodedFeedback;
  assert.equal(second.base, 102);
  assert.deepEqual(second.statuses, [0, 0, 1]);
  assert.deepEqual(
    sent.map((f) => f.feedbackCount),
    [0, 1],
  );
});

test('a late packet is reported in the next feedback, not as lost', async (t) => {
  const { twcc, sent } = feedback(t);
  twcc.record(10, 1, 1_000_000);
  twcc.record(12, 1, 1_002_000); // 11 is late
  twcc.flush(1_010_000);
  twcc.record(11, 1, 1_020_000);
  twcc.record(13, 1, 1_021_000);
  twcc.flush(1_030_000);
  await settle();
  assert.deepEqual((sent[0] as DecodedFeedback).statuses, [1, 0, 1]);
  const second = bySeq(sent[1] as DecodedFeedback);
  assert.equal(second.get(11), 1_020_000);
  assert.equal(second.get(13), 1_021_000);
});

test('a duplicate keeps its first arrival time', async (t) => {
  const { twcc, sent } = feedback(t);
  twcc.record(5, 1, 1_000_000);
  twcc.record(5, 1, 1_500_000);
  twcc.flush(1_600_000);
  await settle();
  assert.deepEqual((sent[0] as DecodedFeedback).arrivals, [1_000_000]);
});

test('the feedback count wraps at 8 bits', async (t) => {
  const { twcc, sent } = feedback(t);
  for (let i = 0; i < 260; i++) {
    twcc.record(i, 1, 1_000_000 + i * 1_000);
    twcc.flush(1_000_500 + i * 1_000);
  }
  await settle();
  assert.equal(sent.length, 260);
  assert.deepEqual(
    sent.slice(254).map((f) => f.feedbackCount),
    [254, 255, 0, 1, 2, 3],
  );
});

test('many packets are split into feedbacks of at most 400 arrivals, back to back', async (t) => {
  const { twcc, sent } = feedback(t);
  for (let i = 0; i < 1000; i++) twcc.record((65000 + i) & 0xffff, 1, 2_000_000 + i * 100);
  twcc.flush(2_200_000);
  await settle();
  assert.deepEqual(
    sent.map((f) => [f.base, f.statusCount]),
    [
      [65000, 400],
      [65400 & 0xffff, 400],
      [65800 & 0xffff, 200],
    ],
  );
});

test('a gap in time too long for one delta starts a new feedback', async (t) => {
  const { twcc, sent } = feedback(t);
  twcc.record(1, 1, 1_000_000);
  twcc.record(2, 1, 11_000_000); // 10 s later: more than a 16-bit delta holds
  twcc.flush(11_000_000);
  await settle();
  assert.deepEqual(
    sent.map((f) => [f.base, f.arrivals]),
    [
      [1, [1_000_000]],
      [2, [11_000_000]],
    ],
  );
});

test('a sender that restarts its sequence far away is followed, not reported as loss', async (t) => {
  const { twcc, sent } = feedback(t);
  twcc.record(1000, 1, 1_000_000);
  twcc.flush(1_010_000);
  twcc.record(40_000, 1, 1_020_000);
  twcc.record(40_001, 1, 1_021_000);
  twcc.flush(1_030_000);
  await settle();
  assert.deepEqual(
    sent.map((f) => [f.base, f.statusCount]),
    [
      [1000, 1],
      [40_000, 2],
    ],
  );
});

test('reads the sequence number from the negotiated extension id; closing stops it', async (t) => {
  const fake = feedback(t);
  const rtp = (seq: number, extensionId: number) =>
    new RtpPacket(
      new RtpHeader({
        ssrc: 77,
        payloadType: 96,
        extension: true,
        extensions: [
          { id: 1, payload: Buffer.from('0') }, // the mid
          { id: extensionId, payload: Buffer.from([seq >> 8, seq & 0xff]) },
        ],
      }),
      Buffer.alloc(10),
    );
  fake.deliver(rtp(513, 3));
  fake.deliver(rtp(600, 4)); // not transport-cc: ignored
  fake.twcc.flush(Number.MAX_SAFE_INTEGER);
  await settle();
  assert.equal(fake.sent.length, 1);
  assert.equal(fake.sent[0]?.base, 513);
  assert.equal(fake.sent[0]?.statusCount, 1);
  assert.equal(fake.sent[0]?.mediaSsrc, 77);
  fake.twcc.close();
  assert.equal(fake.listening(), false);
});
