import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RelayDemand } from './RelayDemand.js';

const LINGER_MS = 60;
const made: RelayDemand<object>[] = [];
afterEach(() => {
  for (const d of made.splice(0)) d.close();
});

/** Polls every 10 ms until `done`; fails after 10 s. */
async function until(done: () => boolean): Promise<void> {
  const end = performance.now() + 10_000;
  while (!done()) {
    assert.ok(performance.now() < end, 'timed out');
    await sleep(10);
  }
}

function demand() {
  const changes: string[] = [];
  const d = new RelayDemand<object>({
    layerCount: 3,
    lingerMs: LINGER_MS,
    onChange: (needed) => changes.push(needed.map((n) => (n ? 'x' : '.')).join('')),
  });
  made.push(d);
  const asked = () => d.asked.map((n) => (n ? 'x' : '.')).join('');
  return { d, changes, asked };
}

test('nothing is asked before a sink needs something; exactly the layers needed, not the ones between', () => {
  const { d, changes, asked } = demand();
  assert.equal(asked(), '...');
  const low = {};
  const high = {};
  d.add(low);
  d.add(high);
  // Sinks that have not spoken start on the lowest layer (as their outgoing stream does).
  assert.equal(asked(), 'x..');
  d.set(low, 0);
  d.set(high, 2);
  assert.equal(asked(), 'x.x');
  assert.deepEqual(changes, ['x..', 'x.x']);
});

test('a layer no longer needed goes after the linger; one needed again meanwhile stays', async () => {
  const { d, changes, asked } = demand();
  const a = {};
  const b = {};
  d.add(a);
  d.set(a, 0);
  d.add(b);
  d.set(b, 2);
  assert.equal(asked(), 'x.x');
  d.set(b, 1);
  assert.equal(asked(), 'xxx', 'the new layer at once, the old one kept');
  await sleep(LINGER_MS * 3);
  assert.equal(asked(), 'xx.');
  d.set(b, 2);
  d.set(b, 1); // a flap within the linger: layer 2 comes, then lingers
  await sleep(LINGER_MS * 3);
  assert.equal(asked(), 'xx.');
  d.remove(b);
  d.set(a, -1);
  await sleep(LINGER_MS * 3);
  assert.equal(asked(), '...');
  assert.deepEqual(changes.slice(0, 6), ['x..', 'x.x', 'xxx', 'xx.', 'xxx', 'xx.']);
  // Layers 1 and 0 became unneeded microseconds apart and each lingers its own full time, so
  // they go in one change or, when the timer fires between their two ends, in two.
  assert.ok(
    ['...', 'x..,...'].includes(changes.slice(6).join(',')),
    `the last changes: ${changes.slice(6).join(',')}`,
  );
});

test('after close nothing changes', async () => {
  const { d, changes } = demand();
  const a = {};
  d.add(a);
  d.set(a, 1);
  d.close();
  d.set(a, 2);
  await sleep(LINGER_MS * 2);
  assert.deepEqual(changes, ['x..', 'xx.']);
});

test('each dropped layer lingers its own full time, counted from when it was dropped', async () => {
  const lingerMs = 1_500;
  const d = new RelayDemand<object>({ layerCount: 3, lingerMs, onChange: () => undefined });
  made.push(d);
  const a = {};
  d.add(a);
  d.set(a, 2);
  d.set(a, 1);
  const twoDropped = performance.now();
  await sleep(300);
  d.set(a, 0);
  const oneDropped = performance.now();
  // Polled: timers never fire early, so the lower bounds hold however loaded the machine is.
  await until(() => !d.asked[2]);
  assert.ok(performance.now() - twoDropped >= lingerMs - 1);
  assert.equal(d.asked[1], true, 'layer 1 was dropped later: it is still carried');
  await until(() => !d.asked[1]);
  assert.ok(performance.now() - oneDropped >= lingerMs - 1);
  assert.deepEqual(d.asked, [true, false, false]);
});

test('a sink needs the layer it wants and the ones its stream sends or switches to meanwhile', async () => {
  const { d, asked } = demand();
  const a = {};
  d.add(a);
  // Wants the top layer; its origin has not sent it yet, so it stands in with the middle one
  // (the lowest, its start before it spoke, lingers).
  d.set(a, 2, [1, -1]);
  assert.equal(asked(), 'xxx');
  await until(() => asked() === '.xx');
  // Out-of-range and repeated layers change nothing.
  d.set(a, 2, [1, 1, 7]);
  assert.equal(asked(), '.xx');
});
