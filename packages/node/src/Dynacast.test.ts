import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Dynacast } from './Dynacast.js';

const DELAY_MS = 150;
const opened: Dynacast<object>[] = [];
after(() => {
  for (const d of opened) d.close();
});

function dynacast(layerCount = 3) {
  const changes: number[] = [];
  const d = new Dynacast<object>({
    layerCount,
    pauseDelayMs: DELAY_MS,
    onChange: (top) => changes.push(top),
  });
  opened.push(d);
  return { d, changes };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

test('sinks that never declared a demand keep every layer', async () => {
  const { d, changes } = dynacast();
  const a = {};
  d.add(a);
  await sleep(DELAY_MS * 3);
  assert.equal(d.top, 2);
  assert.deepEqual(changes, []);
});

test('the union of demands is sent; the rest pauses after the delay, the lowest never', async () => {
  const { d, changes } = dynacast();
  const a = {};
  const b = {};
  d.add(a);
  d.add(b);
  d.set(a, 1);
  assert.equal(d.top, 2, 'b has not spoken: every layer stays');
  d.set(b, 0);
  assert.equal(d.top, 2, 'pausing waits for the delay');
  await waitUntil('layer 2 paused', () => d.top === 1);
  d.set(a, -1);
  d.set(b, -1);
  await waitUntil('layer 1 paused', () => d.top === 0);
  await sleep(DELAY_MS * 2);
  assert.equal(d.top, 0, 'nobody needs anything: the lowest layer still never pauses');
  d.set(b, 2);
  assert.equal(d.top, 2, 'resuming is immediate');
  d.remove(b);
  await waitUntil('the removed sink took its demand with it', () => d.top === 0);
  assert.deepEqual(changes, [1, 0, 2, 0]);
});

test('a sink flapping between layers does not toggle the publisher', async () => {
  const { d, changes } = dynacast();
  const a = {};
  d.add(a);
  d.set(a, 2);
  for (let i = 0; i < 8; i++) {
    d.set(a, 1);
    await sleep(DELAY_MS / 4);
    d.set(a, 2);
    await sleep(DELAY_MS / 4);
  }
  assert.deepEqual(changes, [], 'never unneeded for the whole delay: nothing paused');
  d.set(a, 1);
  await waitUntil('paused once it stayed down', () => d.top === 1);
  assert.deepEqual(changes, [1]);
});

test('with no sink at all only the lowest layer is sent (after the delay); close stops the timer', async () => {
  const { d, changes } = dynacast(2);
  assert.equal(d.top, 1);
  await waitUntil('top paused', () => d.top === 0);
  assert.deepEqual(changes, [0]);
  const other = dynacast(3);
  other.d.close();
  await sleep(DELAY_MS * 2);
  assert.deepEqual(other.changes, [], 'closed before the delay: no change');
});
