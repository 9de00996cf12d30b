import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskTimer } from './TaskTimer.js';

test('a new schedule replaces the pending one; stop() cancels it and waits for a running one', async () => {
  const runs: number[] = [];
  let release = () => {};
  let started = () => {};
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const timer = new TaskTimer(async () => {
    runs.push(runs.length + 1);
    started();
    await new Promise<void>((resolve) => {
      release = resolve;
    });
  });
  timer.schedule(60_000);
  timer.schedule(0); // replaces the one a minute away
  await running;
  assert.equal(timer.running, true);
  timer.schedule(60_000); // pending while the first run is in progress
  const stopped = timer.stop();
  release();
  await stopped;
  assert.equal(timer.running, false);
  assert.deepEqual(runs, [1], 'the replaced and the cancelled runs never ran');
  const left = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.equal(left, 0, 'no timer left behind');
});
