import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SfuError } from '@geosfu/common';
import { HandshakeGate } from './HandshakeGate.js';

const code = (c: string) => (error: unknown) => error instanceof SfuError && error.code === c;

describe('HandshakeGate', () => {
  test('at most maxConcurrent slots; the rest wait first come first served', async () => {
    const waits: string[] = [];
    const gate = new HandshakeGate({
      maxConcurrent: 2,
      timeoutMs: 5_000,
      holdMs: 60_000,
      onWait: (_s, result) => waits.push(result),
    });
    const a = await gate.acquire();
    const b = await gate.acquire();
    const order: string[] = [];
    const c = gate.acquire().then((slot) => {
      order.push('c');
      return slot;
    });
    const d = gate.acquire().then((slot) => {
      order.push('d');
      return slot;
    });
    assert.equal(gate.active, 2);
    assert.equal(gate.waiting, 2);
    a.release();
    a.release(); // idempotent: frees one slot, not two
    const slotC = await c;
    assert.deepEqual(order, ['c']);
    assert.equal(gate.waiting, 1);
    b.release();
    (await d).release();
    slotC.release();
    assert.deepEqual(order, ['c', 'd']);
    assert.equal(gate.active, 0);
    assert.deepEqual(waits, ['admitted', 'admitted', 'admitted', 'admitted']);
    gate.close();
  });

  test('a request that waits past the deadline is refused with SERVICE_BUSY', async () => {
    const waits: string[] = [];
    const gate = new HandshakeGate({
      maxConcurrent: 1,
      timeoutMs: 50,
      holdMs: 60_000,
      onWait: (_s, result) => waits.push(result),
    });
    const held = await gate.acquire();
    await assert.rejects(gate.acquire(), code('SERVICE_BUSY'));
    assert.equal(gate.waiting, 0, 'the refused request left the queue');
    held.release();
    (await gate.acquire()).release();
    assert.deepEqual(waits, ['admitted', 'busy', 'admitted']);
    gate.close();
  });

  test('an aborted wait leaves the queue; a slot not given back is taken back after holdMs', async () => {
    const gate = new HandshakeGate({ maxConcurrent: 1, timeoutMs: 5_000, holdMs: 100 });
    await gate.acquire(); // never released: the gate takes it back
    const abort = new AbortController();
    const aborted = gate.acquire(abort.signal);
    abort.abort();
    await assert.rejects(aborted, code('CLOSED'));
    assert.equal(gate.waiting, 0);
    const next = await gate.acquire(); // admitted once the hold expired
    next.release();
    assert.equal(gate.active, 0);
    gate.close();
  });

  test('close refuses the waiting requests and every later one', async () => {
    const gate = new HandshakeGate({ maxConcurrent: 1, timeoutMs: 5_000, holdMs: 60_000 });
    const held = await gate.acquire();
    const waiting = gate.acquire();
    gate.close();
    await assert.rejects(waiting, code('CLOSED'));
    await assert.rejects(gate.acquire(), code('CLOSED'));
    held.release();
  });
});
