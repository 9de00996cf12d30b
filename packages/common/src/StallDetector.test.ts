import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STALL_THRESHOLD_MS, StallDetector } from './StallDetector.js';

/** Blocks this thread (no CPU spent) as a stopped process would be: no timer, no I/O runs. */
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

test('a stall counts only up to the threshold; running time counts in full', () => {
  const seen: number[] = [];
  const detector = new StallDetector((ms) => seen.push(ms));
  try {
    const a = detector.now();
    block(STALL_THRESHOLD_MS + 1_500);
    const b = detector.now();
    assert.ok(Math.abs(b - a - STALL_THRESHOLD_MS) < 1e-6, `advanced ${b - a} ms over a stall`);
    assert.equal(detector.stalls, 1);
    assert.equal(seen.length, 1);
    assert.ok((seen[0] ?? 0) >= STALL_THRESHOLD_MS + 1_500, 'the report has the whole stall');

    block(200); // a busy event loop, not a stall
    const c = detector.now();
    assert.ok(c - b >= 200, 'time under the threshold counts');
    assert.equal(detector.stalls, 1);
    assert.ok(c >= b, 'never goes back');
  } finally {
    detector.close();
  }
});
