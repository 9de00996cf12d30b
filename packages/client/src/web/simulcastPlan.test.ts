import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimulcastLayers } from '@geosfu/common/protocol';
import { activeFlags, planSimulcast, SIMULCAST_MIN_WIDTH } from './simulcastPlan.js';

describe('planSimulcast', () => {
  test('a 1280x720 capture goes out as q/h/f at 1/4, 1/2 and full size, lowest first', () => {
    const plan = planSimulcast(1280, 720);
    assert.ok(plan);
    assert.deepEqual(
      plan.encodings.map((e) => [e.rid, e.scaleResolutionDownBy, e.active]),
      [
        ['q', 4, true],
        ['h', 2, true],
        ['f', 1, true],
      ],
    );
    assert.deepEqual(
      plan.layers.map((l) => [l.rid, l.width, l.height]),
      [
        ['q', 320, 180],
        ['h', 640, 360],
        ['f', 1280, 720],
      ],
    );
    // Caps grow with the layer and match between what the sender gets and what is declared.
    assert.deepEqual(
      plan.layers.map((l) => l.maxBitrate),
      plan.encodings.map((e) => e.maxBitrate),
    );
    assert.ok(
      plan.layers.every((l, i) => i === 0 || l.maxBitrate > (plan.layers[i - 1]?.maxBitrate ?? 0)),
    );
  });

  test('what it declares is what the publish request schema accepts', () => {
    for (const [w, h] of [
      [1280, 720],
      [960, 540],
      [640, 480],
      [SIMULCAST_MIN_WIDTH, 240],
      [1921, 1081],
    ] as const) {
      const plan = planSimulcast(w, h);
      assert.ok(plan, `${w}x${h}`);
      const parsed = SimulcastLayers.safeParse(plan.layers);
      assert.ok(parsed.success, `${w}x${h}: ${parsed.error?.message}`);
    }
  });

  test('odd sizes round to whole pixels', () => {
    const plan = planSimulcast(962, 541);
    assert.deepEqual(
      plan?.layers.map((l) => [l.width, l.height]),
      [
        [241, 135],
        [481, 271],
        [962, 541],
      ],
    );
  });

  test('a small capture, or one of unknown size, stays one layer', () => {
    assert.equal(planSimulcast(SIMULCAST_MIN_WIDTH - 1, 240), null);
    assert.equal(planSimulcast(160, 120), null);
    assert.equal(planSimulcast(undefined, 720), null);
    assert.equal(planSimulcast(1280, undefined), null);
    assert.equal(planSimulcast(Number.NaN, 720), null);
    assert.equal(planSimulcast(1280, 0), null);
  });
});

describe('activeFlags', () => {
  const encodings = [{ rid: 'q' }, { rid: 'h' }, { rid: 'f' }];

  test('sends the requested rids and pauses the others', () => {
    assert.deepEqual(activeFlags(encodings, ['q', 'h', 'f']), [true, true, true]);
    assert.deepEqual(activeFlags(encodings, ['q', 'h']), [true, true, false]);
    assert.deepEqual(activeFlags(encodings, ['f']), [true, false, true]);
  });

  test('always keeps the lowest layer, even when nothing is requested', () => {
    assert.deepEqual(activeFlags(encodings, []), [true, false, false]);
  });

  test('ignores rids it does not send', () => {
    assert.deepEqual(activeFlags(encodings, ['x', 'h']), [true, true, false]);
  });
});
