import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import {
  normalizeSettings,
  SETTINGS_DEBOUNCE_MS,
  SETTINGS_MAX_DELAY_MS,
  SettingsReporter,
  type ViewSettings,
} from './SettingsReporter.js';

const shown = (width: number, height: number, pin: ViewSettings['pin'] = 'auto'): ViewSettings => ({
  visible: true,
  width,
  height,
  pin,
});

/** A reporter on node:test's mocked clock, recording what it sends. */
function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const sent: [string, ViewSettings][] = [];
  const reporter = new SettingsReporter((trackId, settings) => sent.push([trackId, settings]));
  return { reporter, sent, tick: (ms: number) => t.mock.timers.tick(ms) };
}

describe('normalizeSettings', () => {
  test('whole device pixels within the protocol bounds', () => {
    assert.deepEqual(normalizeSettings(shown(639.6, 359.4)), shown(640, 359));
    assert.deepEqual(normalizeSettings(shown(40_000, 20_000)), shown(16_384, 16_384));
    assert.deepEqual(normalizeSettings(shown(-3, Number.NaN)), {
      visible: false,
      width: 0,
      height: 0,
      pin: 'auto',
    });
  });

  test('nothing laid out is not visible', () => {
    assert.equal(normalizeSettings(shown(0, 360)).visible, false);
    assert.equal(normalizeSettings({ ...shown(640, 360), visible: false }).visible, false);
  });
});

describe('SettingsReporter', () => {
  test('sends nothing before the subscription exists, then the latest settings once', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.update('T1', shown(320, 180));
    reporter.update('T1', shown(640, 360));
    tick(SETTINGS_MAX_DELAY_MS * 2);
    assert.deepEqual(sent, []);
    reporter.subscribed(['T1']);
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(sent, [['T1', shown(640, 360)]]);
    tick(SETTINGS_MAX_DELAY_MS * 2);
    assert.equal(sent.length, 1);
  });

  test('a burst of changes goes out once, after the quiet time', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    for (let w = 100; w <= 500; w += 100) {
      reporter.update('T1', shown(w, w / 2));
      tick(50);
    }
    assert.deepEqual(sent, []);
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(sent, [['T1', shown(500, 250)]]);
  });

  test('changes that keep coming still go out within the maximum delay', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    let elapsed = 0;
    for (let w = 100; sent.length === 0 && elapsed <= SETTINGS_MAX_DELAY_MS; w++) {
      reporter.update('T1', shown(w, 100));
      tick(100);
      elapsed += 100;
    }
    assert.equal(sent.length, 1);
    assert.ok(elapsed <= SETTINGS_MAX_DELAY_MS, `first send after ${elapsed} ms`);
  });

  test('only a change is sent: the same settings again, or back to the sent ones, send nothing', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    tick(SETTINGS_DEBOUNCE_MS);
    reporter.update('T1', shown(640.2, 359.8)); // the same in whole pixels
    reporter.update('T1', shown(320, 180));
    reporter.update('T1', shown(640, 360)); // back before the debounce ran out
    tick(SETTINGS_MAX_DELAY_MS);
    assert.deepEqual(sent, [['T1', shown(640, 360)]]);
  });

  test('a pin or a visibility change is a change', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    tick(SETTINGS_DEBOUNCE_MS);
    reporter.update('T1', shown(640, 360, 'low'));
    tick(SETTINGS_DEBOUNCE_MS);
    reporter.update('T1', { ...shown(640, 360, 'low'), visible: false });
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(
      sent.map(([, s]) => [s.pin, s.visible]),
      [
        ['auto', true],
        ['low', true],
        ['low', false],
      ],
    );
  });

  test('each track is sent on its own; a track not subscribed waits', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    reporter.update('T2', shown(320, 180));
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(sent, [['T1', shown(640, 360)]]);
    reporter.subscribed(['T1', 'T2']);
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(sent, [
      ['T1', shown(640, 360)],
      ['T2', shown(320, 180)],
    ]);
  });

  test('after a reset (a new connection) everything goes out again once subscribed', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    tick(SETTINGS_DEBOUNCE_MS);
    reporter.reset();
    tick(SETTINGS_MAX_DELAY_MS);
    assert.equal(sent.length, 1);
    reporter.subscribed(['T1']);
    tick(SETTINGS_DEBOUNCE_MS);
    assert.deepEqual(sent, [
      ['T1', shown(640, 360)],
      ['T1', shown(640, 360)],
    ]);
  });

  test('a track that left the subscription is sent again when it comes back', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    tick(SETTINGS_DEBOUNCE_MS);
    reporter.subscribed([]);
    reporter.subscribed(['T1']);
    tick(SETTINGS_DEBOUNCE_MS);
    assert.equal(sent.length, 2);
  });

  test('close cancels what is pending and ignores later updates', (t) => {
    const { reporter, sent, tick } = setup(t);
    reporter.subscribed(['T1']);
    reporter.update('T1', shown(640, 360));
    reporter.close();
    reporter.update('T1', shown(320, 180));
    reporter.subscribed(['T1']);
    tick(SETTINGS_MAX_DELAY_MS * 2);
    assert.deepEqual(sent, []);
  });
});
