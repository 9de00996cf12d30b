import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatestWrites } from './LatestWrites.js';

/** A write that finishes when the test says so. */
function controlledWrites() {
  const started: { key: string; state: string; finish: () => void }[] = [];
  let active = 0;
  let overlapped = false;
  const writes = new LatestWrites<string>(
    (key, state) =>
      new Promise<void>((resolve) => {
        active++;
        if (active > 1) overlapped = true;
        started.push({
          key,
          state,
          finish: () => {
            active--;
            resolve();
          },
        });
      }),
  );
  return { writes, started, overlapped: () => overlapped };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('one key: one write at a time, the latest state last, the changes between coalesced', async () => {
  const { writes, started, overlapped } = controlledWrites();
  writes.changed('s1', 'audio');
  writes.changed('s1', 'audio+video');
  writes.changed('s1', 'audio+video+screen');
  assert.deepEqual(
    started.map((w) => w.state),
    ['audio'],
    'the second waits for the first',
  );
  started[0]?.finish();
  await tick();
  assert.deepEqual(
    started.map((w) => w.state),
    ['audio', 'audio+video+screen'],
  );
  started[1]?.finish();
  await tick();
  assert.equal(started.length, 2);
  assert.equal(writes.pending, 0);
  assert.equal(overlapped(), false);
  // Idle again: the next change is written at once.
  writes.changed('s1', 'video');
  assert.equal(started.at(-1)?.state, 'video');
  started.at(-1)?.finish();
  await tick();
  assert.equal(writes.pending, 0);
});

test('keys do not wait for each other', () => {
  const { writes, started } = controlledWrites();
  writes.changed('s1', 'a');
  writes.changed('s2', 'b');
  assert.deepEqual(
    started.map((w) => `${w.key}=${w.state}`),
    ['s1=a', 's2=b'],
  );
  for (const w of started) w.finish();
});
