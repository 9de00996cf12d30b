import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allocateLayers, type LayerOption } from './allocateLayers.js';

/** Chrome's three layers of a 960x540 camera, roughly: 240, 480 and 960 px wide. */
const camera = (active: [boolean, boolean, boolean] = [true, true, true]): LayerOption[] => [
  { width: 240, bitrateBps: 150_000, active: active[0] },
  { width: 480, bitrateBps: 500_000, active: active[1] },
  { width: 960, bitrateBps: 1_500_000, active: active[2] },
];

test('one video: the highest layer that fits the budget, capped by the rendered size', () => {
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 960 }], 5_000_000), [2]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 960 }], 1_000_000), [1]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 320 }], 5_000_000), [1]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 200 }], 5_000_000), [0]);
});

test('a hidden video gets nothing; an over-budget one still gets its lowest layer', () => {
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 0 }], 5_000_000), [-1]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 960 }], 50_000), [0]);
});

test('two videos on 600 kbit/s: both get a picture before either gets a sharp one', () => {
  const videos = [
    { layers: camera(), renderWidth: 960 },
    { layers: camera(), renderWidth: 960 },
  ];
  assert.deepEqual(allocateLayers(videos, 600_000), [0, 0]);
  assert.deepEqual(allocateLayers(videos, 1_000_000), [1, 0]);
  assert.deepEqual(allocateLayers(videos, 1_300_000), [1, 1]);
});

test('inactive layers are skipped (paused at the publisher, or not arriving)', () => {
  assert.deepEqual(
    allocateLayers([{ layers: camera([true, false, true]), renderWidth: 960 }], 5_000_000),
    [2],
  );
  assert.deepEqual(
    allocateLayers([{ layers: camera([false, false, false]), renderWidth: 960 }], 5_000_000),
    [-1],
  );
});

test('a paused layer counts within the size cap; above it only an arriving one stands in', () => {
  const paused = (active: boolean[], pausedFlags: boolean[]): LayerOption[] =>
    camera().map((l, i) => ({ ...l, active: active[i] ?? false, paused: pausedFlags[i] ?? false }));
  // A big tile: its paused top layer is chosen (dynacast resumes it).
  assert.deepEqual(
    allocateLayers(
      [{ layers: paused([true, true, false], [false, false, true]), renderWidth: 960 }],
      5e6,
    ),
    [2],
  );
  // A thumbnail whose lowest layer stalled while h and f are paused: nothing (it waits for q)
  // rather than the publisher's top layer switched on for it.
  assert.deepEqual(
    allocateLayers(
      [{ layers: paused([false, false, false], [false, true, true]), renderWidth: 200 }],
      5e6,
    ),
    [-1],
  );
  // ... and when h still arrives, h stands in for the stalled q.
  assert.deepEqual(
    allocateLayers(
      [{ layers: paused([false, true, false], [false, false, true]), renderWidth: 200 }],
      5e6,
    ),
    [1],
  );
  // A paused h within a 480 px tile's cap is its floor when q stalled.
  assert.deepEqual(
    allocateLayers(
      [{ layers: paused([false, false, true], [false, true, false]), renderWidth: 480 }],
      5e6,
    ),
    [1],
  );
});

test('pins: low whatever the budget, high whatever the size (budget still rules)', () => {
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 960, pin: 'low' }], 9e6), [0]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 100, pin: 'high' }], 9e6), [2]);
  assert.deepEqual(allocateLayers([{ layers: camera(), renderWidth: 100, pin: 'high' }], 7e5), [1]);
});

test('hysteresis: moving up needs a margin, staying does not', () => {
  // 1.55 Mbit/s fits layer 2 (1.5 Mbit/s) but not with the 15 % margin of an upgrade.
  assert.deepEqual(
    allocateLayers([{ layers: camera(), renderWidth: 960, current: 1 }], 1_550_000),
    [1],
  );
  assert.deepEqual(
    allocateLayers([{ layers: camera(), renderWidth: 960, current: 2 }], 1_550_000),
    [2],
  );
  assert.deepEqual(
    allocateLayers([{ layers: camera(), renderWidth: 960, current: 2 }], 1_400_000),
    [1],
  );
});

test('an unlimited budget gives each video its cap (what the allocator compares with to probe)', () => {
  const videos = [
    { layers: camera(), renderWidth: 960 },
    { layers: camera(), renderWidth: 300, current: 2 },
    { layers: camera(), renderWidth: 960, pin: 'low' as const },
    { layers: camera(), renderWidth: 0 },
  ];
  assert.deepEqual(allocateLayers(videos, Number.POSITIVE_INFINITY), [2, 1, 0, -1]);
});

test('a ceiling holds a video below what the budget allows, never below its lowest layer', () => {
  const big = { layers: camera(), renderWidth: 960 };
  assert.deepEqual(allocateLayers([{ ...big, ceiling: 1 }], 5_000_000), [1]);
  assert.deepEqual(allocateLayers([{ ...big, ceiling: 0 }], 5_000_000), [0]);
  // Below the lowest active layer: the lowest active one still (a frozen tile is worse).
  assert.deepEqual(
    allocateLayers([{ layers: camera([false, true, true]), renderWidth: 960, ceiling: 0 }], 5e6),
    [1],
  );
  // The budget still rules under the ceiling; the size cap too.
  assert.deepEqual(allocateLayers([{ ...big, ceiling: 2 }], 1_000_000), [1]);
  assert.deepEqual(allocateLayers([{ ...big, renderWidth: 200, ceiling: 2 }], 5_000_000), [0]);
});
