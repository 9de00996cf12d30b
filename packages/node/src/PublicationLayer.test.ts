import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LAYER_TICK_MS, LayerState } from './PublicationLayer.js';

const rateOf = (bytes: number, ticks: number) => (bytes * 8 * 1000) / (ticks * LAYER_TICK_MS);

test('a layer that comes back is measured from its return, not averaged with its quiet ticks', () => {
  const layer = new LayerState({ rid: 'h', width: 640, height: 360, maxBitrate: 500_000 });
  layer.count(1_000);
  layer.active = true; // what Publication.forward sets on a packet
  layer.tick();
  assert.equal(layer.bitrateBps, rateOf(1_000, 1));
  // Quiet: inactive after LAYER_INACTIVE_AFTER_MS (two ticks).
  layer.tick();
  assert.equal(layer.active, true);
  assert.equal(layer.tick(), true, 'became inactive');
  assert.equal(layer.active, false);
  assert.equal(layer.bitrateBps, 0);
  // Back: one tick at 1,000 bytes is 1,000 bytes a tick, not a quarter of it.
  layer.count(1_000);
  layer.active = true;
  layer.tick();
  assert.equal(layer.bitrateBps, rateOf(1_000, 1));
  layer.count(3_000);
  layer.tick();
  assert.equal(layer.bitrateBps, rateOf(4_000, 2));
});
