import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lifecycle } from './Lifecycle.js';

test('concurrent starts share one attempt; a failure can be retried, a success is kept', async () => {
  let runs = 0;
  let fail = true;
  const life = new Lifecycle('the thing', async () => {
    runs++;
    await Promise.resolve();
    if (fail) throw new Error(`attempt ${runs} failed`);
  });
  const [a, b] = [life.start(), life.start()];
  assert.equal(a, b);
  await assert.rejects(a, /attempt 1 failed/);
  fail = false;
  await life.start();
  await life.start();
  assert.equal(runs, 2);
});

test('close runs once, after a start in progress, and refuses later starts', async () => {
  const order: string[] = [];
  let finishStart = () => {};
  const life = new Lifecycle('the thing', async () => {
    await new Promise<void>((resolve) => {
      finishStart = resolve;
    });
    order.push('started');
  });
  const started = life.start();
  const close = async () => {
    order.push('closed');
  };
  const closed = [life.close(close), life.close(close)];
  assert.equal(closed[0], closed[1]);
  assert.equal(life.closing, true);
  finishStart();
  await Promise.all([started, ...closed]);
  assert.deepEqual(order, ['started', 'closed']);
  await assert.rejects(life.start(), (e: Error) => {
    assert.equal(e.name, 'InvalidStateError');
    assert.equal(e.message, 'the thing is closed');
    return true;
  });
});
