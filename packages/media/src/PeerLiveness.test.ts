import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RTCPeerConnection } from 'werift';
import { PeerLiveness } from './PeerLiveness.js';

const TIMEOUT_MS = 300;

/** Resolves with the verdict and how long after `since` it came. */
function verdict(watchOf: (onDead: (why: string) => void) => PeerLiveness, since = Date.now()) {
  let watch: PeerLiveness | undefined;
  const dead = new Promise<{ why: string; afterMs: number }>((resolve) => {
    watch = watchOf((why) => resolve({ why, afterMs: Date.now() - since }));
  });
  assert.ok(watch);
  return { watch, dead };
}

test('a PeerConnection that carries streams and never connects is dead after the timeout', async () => {
  const pc = new RTCPeerConnection();
  try {
    const { dead } = verdict((onDead) => new PeerLiveness(pc, { timeoutMs: TIMEOUT_MS, onDead }));
    const { why, afterMs } = await dead;
    assert.equal(why, 'never connected');
    assert.ok(afterMs >= TIMEOUT_MS, `judged after ${afterMs} ms`);
  } finally {
    await pc.close();
  }
});

test('the clock does not run while the PeerConnection carries no stream', async () => {
  const pc = new RTCPeerConnection();
  let carries = false;
  const { watch, dead } = verdict(
    (onDead) =>
      new PeerLiveness(pc, { timeoutMs: TIMEOUT_MS, carriesStreams: () => carries, onDead }),
  );
  try {
    let judged = false;
    void dead.then(() => {
      judged = true;
    });
    // Idle for three timeouts: an absence, so it can only be checked after a while.
    await sleep(3 * TIMEOUT_MS);
    assert.equal(judged, false, 'an idle PeerConnection is not judged');
    const flipped = Date.now();
    carries = true;
    const { why } = await dead;
    const afterMs = Date.now() - flipped;
    assert.equal(why, 'never connected');
    assert.ok(afterMs >= TIMEOUT_MS - 100, `the clock started with the streams (${afterMs} ms)`);
  } finally {
    watch.close();
    await pc.close();
  }
});

test('close() stops the watch: no verdict comes after it', async () => {
  const pc = new RTCPeerConnection();
  let calls = 0;
  const watch = new PeerLiveness(pc, { timeoutMs: TIMEOUT_MS, onDead: () => calls++ });
  watch.close();
  watch.close(); // idempotent
  await sleep(2 * TIMEOUT_MS);
  assert.equal(calls, 0);
  await pc.close();
});
