import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rembPacket } from './rtcp.js';

test('REMB encodes the bitrate as mantissa and exponent', () => {
  const packet = rembPacket(1, [2, 3], 3_000_000);
  const feedback = packet.feedback as unknown as {
    brMantissa: number;
    brExp: number;
    ssrcFeedbacks: number[];
  };
  assert.ok(feedback.brMantissa < 1 << 18);
  const bitrate = feedback.brMantissa * 2 ** feedback.brExp;
  assert.ok(Math.abs(bitrate - 3_000_000) / 3_000_000 < 0.001);
  assert.deepEqual(feedback.ssrcFeedbacks, [2, 3]);
});
