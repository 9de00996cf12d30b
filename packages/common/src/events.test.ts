import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SfuError } from './errors.js';
import { TypedEmitter } from './events.js';

type Events = { tick: [n: number]; done: [] };

test('a listener that throws is reported and the others still run', () => {
  const errors: string[] = [];
  const e = new TypedEmitter<Events>((event) => errors.push(event));
  const seen: number[] = [];
  e.on('tick', () => {
    throw new Error('boom');
  });
  e.on('tick', (n) => seen.push(n));
  e.safeEmit('tick', 1);
  assert.deepEqual(seen, [1]);
  assert.deepEqual(errors, ['tick']);
});

test('waitFor resolves with the first event that passes the filter', async () => {
  const e = new TypedEmitter<Events>();
  const waiting = e.waitFor('tick', { filter: (n) => n > 2, timeoutMs: 1_000 });
  for (const n of [1, 2, 3, 4]) e.safeEmit('tick', n);
  assert.deepEqual(await waiting, [3]);
  assert.equal(e.listenerCount('tick'), 0, 'its listener is removed');
});

test('waitFor rejects with TIMEOUT and removes its listener', async () => {
  const e = new TypedEmitter<Events>();
  await assert.rejects(
    e.waitFor('done', { timeoutMs: 20 }),
    (err: unknown) => err instanceof SfuError && err.code === 'TIMEOUT',
  );
  assert.equal(e.listenerCount('done'), 0);
});
