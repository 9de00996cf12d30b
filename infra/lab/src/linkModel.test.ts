import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededRandom } from '@geosfu/common';
import { JitterCurve, LinkModel, LossModel } from './linkModel.js';
import { LinkParams } from './profiles.js';

const params = (p: Partial<LinkParams>) => LinkParams.parse({ delayMs: 0, ...p });

function stats(xs: number[]) {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  return { mean, sd };
}

describe('LinkModel', () => {
  test('a clean link delays every packet by exactly its delay', () => {
    const link = new LinkModel(params({ delayMs: 80 }), seededRandom(1));
    for (let t = 0; t < 100; t += 3.3) {
      assert.deepEqual(link.admit(t, 1200), { dueMs: t + 80 });
    }
  });

  test('jitter has the configured spread, keeps FIFO order and is correlated in time', () => {
    const link = new LinkModel(
      params({ delayMs: 100, jitterMs: 5, jitterCorrelationMs: 50 }),
      seededRandom(7),
    );
    const delays: number[] = [];
    let lastDue = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < 200_000; i++) {
      const t = i * 1; // 1000 packets/s for 200 s
      const v = link.admit(t, 1000);
      assert.ok('dueMs' in v);
      assert.ok(v.dueMs >= lastDue, `packet ${i} would overtake the one before`);
      lastDue = v.dueMs;
      delays.push(v.dueMs - t);
    }
    const { mean, sd } = stats(delays);
    assert.ok(Math.abs(mean - 100) < 0.6, `mean delay ${mean}`);
    assert.ok(sd > 4.2 && sd < 5.8, `delay sd ${sd}, configured 5`);
    // Neighbours 1 ms apart see almost the same delay; independent draws would differ by ~5.6 ms.
    let diff = 0;
    for (let i = 1; i < delays.length; i++)
      diff += Math.abs((delays[i] ?? 0) - (delays[i - 1] ?? 0));
    assert.ok(
      diff / (delays.length - 1) < 0.5,
      `mean neighbour difference ${diff / delays.length}`,
    );
  });

  test('the jitter curve is continuous and restarts after a long idle spell', () => {
    const curve = new JitterCurve(3, 20, seededRandom(3));
    let prev = curve.at(0);
    for (let t = 0.25; t < 1000; t += 0.25) {
      const v = curve.at(t);
      assert.ok(Math.abs(v - prev) < 1.5, `jump of ${v - prev} ms at ${t}`);
      prev = v;
    }
    assert.ok(Number.isFinite(curve.at(10_000_000)));
  });

  test('Bernoulli loss loses the configured share', () => {
    const loss = new LossModel(1, 1, seededRandom(11));
    let lost = 0;
    for (let i = 0; i < 100_000; i++) if (loss.lose()) lost++;
    // 1000 expected, sd ~31.5: four sd either side.
    assert.ok(lost > 874 && lost < 1126, `lost ${lost} of 100000 at 1%`);
  });

  test('Gilbert-Elliott loss keeps the share and makes bursts of the configured length', () => {
    const loss = new LossModel(3, 4, seededRandom(5));
    let lost = 0;
    let bursts = 0;
    let inBurst = false;
    for (let i = 0; i < 400_000; i++) {
      const l = loss.lose();
      if (l) lost++;
      if (l && !inBurst) bursts++;
      inBurst = l;
    }
    const share = (100 * lost) / 400_000;
    assert.ok(share > 2.7 && share < 3.3, `loss ${share}%`);
    const meanBurst = lost / bursts;
    assert.ok(meanBurst > 3.6 && meanBurst < 4.4, `mean burst ${meanBurst} packets`);
  });

  test('a rate limit paces packets, bounds the queue and drops the excess', () => {
    // 1 Mbit/s bottleneck, 1250-byte packets (10 kbit, 10 ms each) offered every 5 ms.
    const link = new LinkModel(
      params({ delayMs: 20, rateKbps: 1000, queueMs: 100 }),
      seededRandom(1),
    );
    let sent = 0;
    let dropped = 0;
    let lastDue = 0;
    for (let t = 0; t < 10_000; t += 5) {
      const v = link.admit(t, 1250);
      if ('drop' in v) {
        assert.equal(v.drop, 'queue');
        dropped++;
        continue;
      }
      sent++;
      // Queueing delay never exceeds the bound plus one packet's transmission.
      assert.ok(v.dueMs - t <= 20 + 100 + 10 + 1e-9, `delay ${v.dueMs - t} at ${t}`);
      lastDue = v.dueMs;
    }
    // 10 s at 1 Mbit/s = 1000 packets of 10 kbit, about half of what was offered.
    assert.ok(sent >= 995 && sent <= 1012, `sent ${sent}`);
    assert.ok(dropped >= 985, `dropped ${dropped}`);
    assert.ok(lastDue <= 10_000 + 20 + 110, `last departure ${lastDue}`);
  });

  test('the same seed replays the same fate for every packet', () => {
    const run = (seed: number) => {
      const link = new LinkModel(
        params({ delayMs: 50, jitterMs: 4, lossPercent: 2, lossBurstPackets: 3 }),
        seededRandom(seed),
      );
      return Array.from({ length: 2000 }, (_, i) => JSON.stringify(link.admit(i * 2, 900)));
    };
    assert.deepEqual(run(42), run(42));
    assert.notDeepEqual(run(42), run(43));
  });
});
