import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SustainedEstimate } from './SustainedEstimate.js';

test('a drop counts at once, a rise only after it held for the whole window', () => {
  const e = new SustainedEstimate(3_000);
  assert.equal(e.update(0, 500_000), 500_000);
  // A peak does not count...
  assert.equal(e.update(500, 590_000), 500_000);
  assert.equal(e.update(1_000, 480_000), 480_000, 'a drop counts at once');
  assert.equal(e.update(1_500, 2_000_000), 480_000);
  assert.equal(e.update(4_000, 2_100_000), 480_000, 'the 480k sample is 3 s old: still in');
  // ... a rise that lasted the window does.
  assert.equal(e.update(4_001, 2_100_000), 2_000_000);
  assert.equal(e.update(4_501, 2_200_000), 2_100_000, 'the 2.0M sample is over 3 s old');
  assert.equal(e.update(8_000, 2_200_000), 2_200_000);
});

test('a hold of 0 is the newest estimate; reset forgets; a negative hold is refused', () => {
  const e = new SustainedEstimate(0);
  assert.equal(e.update(0, 300_000), 300_000);
  assert.equal(e.update(1, 900_000), 900_000);
  const held = new SustainedEstimate(1_000);
  held.update(0, 100_000);
  held.reset();
  assert.equal(held.update(10, 700_000), 700_000);
  assert.throws(() => new SustainedEstimate(-1), RangeError);
});
