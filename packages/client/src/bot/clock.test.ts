import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockPingTs, estimateClockOffset } from './clock.js';

describe('estimateClockOffset', () => {
  it('takes the midpoint of the exchange with the smallest round trip', () => {
    // The node is 100 ms ahead; symmetric 5 ms legs in the best sample.
    const estimate = estimateClockOffset([
      { t0: 1000, serverTs: 1130, t3: 1040 }, // 40 ms, queued on the way there
      { t0: 2000, serverTs: 2105, t3: 2010 }, // 10 ms, symmetric
      { t0: 3000, serverTs: 3101, t3: 3030 }, // 30 ms, queued on the way back
    ]);
    assert.deepEqual(estimate, { offsetMs: 100, rttMs: 10 });
  });

  it('gives a negative offset for a node clock behind the client', () => {
    assert.deepEqual(estimateClockOffset([{ t0: 5000, serverTs: 4753, t3: 5006 }]), {
      offsetMs: -250,
      rttMs: 6,
    });
  });

  it('skips unusable samples and answers undefined without any', () => {
    assert.equal(estimateClockOffset([]), undefined);
    assert.equal(estimateClockOffset([{ t0: 10, serverTs: Number.NaN, t3: 12 }]), undefined);
    // A pong "before" its ping (clock stepped back) is not a sample.
    assert.deepEqual(
      estimateClockOffset([
        { t0: 10, serverTs: 50, t3: 8 },
        { t0: 20, serverTs: 60, t3: 24 },
      ]),
      { offsetMs: 38, rttMs: 4 },
    );
  });
});

describe('clockPingTs', () => {
  it('never equals an integer Date.now() keep-alive timestamp', () => {
    assert.equal(Number.isInteger(clockPingTs(1_700_000_000_000)), false);
    assert.equal(clockPingTs(1_700_000_000_000.25), 1_700_000_000_000.25);
  });
});
