import assert from 'node:assert/strict';
import { test } from 'node:test';
import { greatCircleDistanceKm, isValidGeoPoint } from './geo.js';
import { REGIONS, regionLocation, regionPreset } from './regions.js';

const near = (actual: number, expected: number, tolerance: number) =>
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${actual} is not ${expected} ± ${tolerance}`,
  );

test('great-circle distances between known cities', () => {
  const ams = regionLocation('ams');
  const sin = regionLocation('sin');
  const hcm = regionLocation('hcm');
  const fra = regionLocation('fra');
  assert.ok(ams && sin && hcm && fra);
  near(greatCircleDistanceKm(ams, sin), 10_530, 60);
  near(greatCircleDistanceKm(sin, hcm), 1_090, 20);
  near(greatCircleDistanceKm(ams, fra), 360, 10);
  assert.equal(greatCircleDistanceKm(ams, ams), 0);
  assert.equal(greatCircleDistanceKm(ams, sin), greatCircleDistanceKm(sin, ams));
  // Antipodes: half the circumference, and no NaN from rounding.
  near(
    greatCircleDistanceKm({ latitude: 0, longitude: 0 }, { latitude: 0, longitude: 180 }),
    20_015,
    1,
  );
});

test('region presets', () => {
  for (const id of [
    'ams',
    'fra',
    'lon',
    'par',
    'sin',
    'hcm',
    'han',
    'hkg',
    'tyo',
    'syd',
    'iad',
    'sfo',
    'gru',
    'bom',
    'jnb',
  ]) {
    const preset = regionPreset(id);
    assert.ok(preset, id);
    assert.equal(preset.id, id);
    assert.ok(isValidGeoPoint(preset), id);
  }
  assert.equal(regionLocation('local'), undefined);
  assert.equal(regionLocation('toString'), undefined, 'no prototype keys');
  assert.ok(Object.isFrozen(REGIONS));
  assert.equal(isValidGeoPoint({ latitude: 91, longitude: 0 }), false);
  assert.equal(isValidGeoPoint({ latitude: Number.NaN, longitude: 0 }), false);
});
