import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RETRANSMIT_SHARE, RetransmissionGate } from './RetransmissionGate.js';

test('media is told from retransmissions by the highest sequence number sent, across the wrap', () => {
  const gate = new RetransmissionGate();
  assert.equal(gate.isRetransmission(1, 65_534), false);
  assert.equal(gate.isRetransmission(1, 65_535), false);
  assert.equal(gate.isRetransmission(1, 0), false);
  assert.equal(gate.isRetransmission(1, 3), false); // a gap: still media
  assert.equal(gate.isRetransmission(1, 1), true); // sent before, or older than the highest
  assert.equal(gate.isRetransmission(1, 65_535), true);
  assert.equal(gate.isRetransmission(1, 3), true); // the same packet again
  assert.equal(gate.isRetransmission(2, 1), false); // another SSRC has its own numbers
  gate.forget(1);
  assert.equal(gate.isRetransmission(1, 1), false); // a forgotten SSRC starts over
});

test('a packet is resent at most once per round trip', () => {
  const gate = new RetransmissionGate();
  gate.isRetransmission(1, 100);
  assert.equal(gate.admit(1, 90, 1_200, 0, 40, 1_000_000), 'resent');
  assert.equal(gate.admit(1, 90, 1_200, 30, 40, 1_000_000), 'too-soon');
  assert.equal(gate.admit(1, 91, 1_200, 30, 40, 1_000_000), 'resent'); // another packet
  assert.equal(gate.admit(1, 90, 1_200, 50, 40, 1_000_000), 'resent'); // 40 + 5 ms later
  // Without a measured round trip, 100 ms.
  assert.equal(gate.admit(1, 92, 1_200, 0, undefined, 1_000_000), 'resent');
  assert.equal(gate.admit(1, 92, 1_200, 99, undefined, 1_000_000), 'too-soon');
  assert.equal(gate.admit(1, 92, 1_200, 106, undefined, 1_000_000), 'resent');
  assert.equal(gate.resent, 5);
  assert.equal(gate.skipped, 2);
});

test('retransmissions spend at most a quarter of the estimate per second', () => {
  const gate = new RetransmissionGate();
  gate.isRetransmission(1, 60_000);
  const estimate = 800_000;
  const budgetBytes = (RETRANSMIT_SHARE * estimate) / 8; // 25,000 bytes per second
  let seq = 1;
  let resent = 0;
  // A storm: NACKs for 100 different packets within 100 ms.
  for (let i = 0; i < 100; i++) {
    if (gate.admit(1, seq++, 1_000, i, 20, estimate) === 'resent') resent++;
  }
  assert.equal(resent, budgetBytes / 1_000);
  assert.equal(gate.admit(1, seq++, 1_000, 999, 20, estimate), 'over-budget');
  // A second after the first ones went out, the budget is back.
  assert.equal(gate.admit(1, seq++, 1_000, 1_000, 20, estimate), 'resent');
  // No estimate yet (no feedback): no budget to enforce.
  const fresh = new RetransmissionGate();
  fresh.isRetransmission(1, 60_000);
  for (let i = 0; i < 100; i++) assert.equal(fresh.admit(1, i, 1_000, i, 20, undefined), 'resent');
});
