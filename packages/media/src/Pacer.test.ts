import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { MAX_QUEUE_MS, PACING_FACTOR, Pacer } from './Pacer.js';

/** A pacer on a fake clock and fake timers; packets are numbered, 1200 bytes unless told. */
function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 0;
  const sent: { seq: number; at: number }[] = [];
  const pacer = new Pacer<number>({
    send: (_payload, seq) => {
      sent.push({ seq, at: now });
      return Promise.resolve(1_200);
    },
    wireBytes: (payload) => payload.length,
    now: () => now,
  });
  t.after(() => pacer.close());
  const advance = (ms: number) => {
    for (let i = 0; i < ms; i++) {
      now += 1;
      t.mock.timers.tick(1);
    }
  };
  const packet = (bytes = 1_200) => Buffer.alloc(bytes);
  return { pacer, sent, advance, packet };
}

test('without an estimate every packet leaves at once', (t) => {
  const { pacer, sent, packet } = setup(t);
  for (let seq = 0; seq < 50; seq++) void pacer.send(packet(), seq);
  assert.equal(sent.length, 50);
  assert.equal(pacer.queuedPackets, 0);
  assert.equal(pacer.pacedPackets, 0);
});

test('a burst leaves at the paced rate, in order, and nothing is lost', async (t) => {
  const { pacer, sent, advance, packet } = setup(t);
  const rate = 800_000;
  pacer.rateBps = rate;
  // A 36 KB keyframe handed over at once.
  const done = Array.from({ length: 30 }, (_, seq) => pacer.send(packet(), seq));
  assert.ok(sent.length <= 3, `${sent.length} packets left at once`);
  assert.ok(pacer.queueDelayMs > 0);
  advance(100);
  // 100 ms at 1.25 x 800 kbit/s is 12.5 KB: about ten packets, plus the first burst.
  const bytesPerMs = (rate * PACING_FACTOR) / 8_000;
  const allowed = 3 + Math.ceil((100 * bytesPerMs) / 1_200) + 1;
  assert.ok(sent.length <= allowed, `${sent.length} sent in 100 ms, at most ${allowed} paced`);
  assert.ok(sent.length >= allowed - 3, `${sent.length} sent in 100 ms: the pacer stalls`);
  advance(400);
  assert.equal(sent.length, 30);
  assert.deepEqual(
    sent.map((s) => s.seq),
    Array.from({ length: 30 }, (_, i) => i),
  );
  assert.deepEqual(await Promise.all(done), Array(30).fill(1_200));
  assert.equal(pacer.queuedPackets, 0);
  assert.equal(pacer.queuedBytes, 0);
  assert.ok(pacer.pacedPackets >= 27);
});

test('priority packets (audio) skip the queue but spend the budget', (t) => {
  const { pacer, sent, advance, packet } = setup(t);
  pacer.rateBps = 800_000;
  for (let seq = 0; seq < 20; seq++) void pacer.send(packet(), seq);
  const before = sent.length;
  void pacer.send(packet(100), 1_000, true);
  assert.equal(sent.length, before + 1);
  assert.equal(sent.at(-1)?.seq, 1_000);
  advance(1_000);
  assert.equal(sent.length, 21);
});

test('a queue older than MAX_QUEUE_MS drains faster than the estimate', (t) => {
  const { pacer, sent, advance, packet } = setup(t);
  pacer.rateBps = 100_000; // 15.6 bytes/ms paced: 120 KB would take 7.7 s
  for (let seq = 0; seq < 100; seq++) void pacer.send(packet(), seq);
  advance(MAX_QUEUE_MS + 100);
  assert.equal(sent.length, 100, `${sent.length} of 100 sent after ${MAX_QUEUE_MS + 100} ms`);
});

test('lifting the estimate, and closing, send what waits', async (t) => {
  const { pacer, sent, packet } = setup(t);
  pacer.rateBps = 500_000;
  const first = Array.from({ length: 10 }, (_, seq) => pacer.send(packet(), seq));
  assert.ok(sent.length < 10);
  pacer.rateBps = undefined;
  assert.equal(sent.length, 10);
  await Promise.all(first);
  pacer.rateBps = 500_000;
  const second = Array.from({ length: 10 }, (_, seq) => pacer.send(packet(), 10 + seq));
  assert.ok(sent.length < 20);
  pacer.close();
  assert.equal(sent.length, 20);
  await Promise.all(second);
  // Closed: nothing waits any more.
  void pacer.send(packet(), 99);
  assert.equal(sent.length, 21);
});

test('a send that fails rejects its own promise only', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 0;
  const pacer = new Pacer<number>({
    send: (_payload, seq) =>
      seq === 3 ? Promise.reject(new Error('dtls closed')) : Promise.resolve(seq),
    wireBytes: (payload) => payload.length,
    now: () => now,
  });
  t.after(() => pacer.close());
  pacer.rateBps = 500_000;
  const results = Array.from({ length: 6 }, (_, seq) => pacer.send(Buffer.alloc(1_200), seq));
  for (let i = 0; i < 200; i++) {
    now += 1;
    t.mock.timers.tick(1);
  }
  const settled = await Promise.allSettled(results);
  assert.deepEqual(
    settled.map((s) => s.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
});
