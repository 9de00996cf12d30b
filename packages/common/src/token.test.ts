import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SfuError } from './errors.js';
import { parseDurationSeconds, TokenService } from './token.js';

const service = new TokenService('key1', 'secret-secret-secret-secret-1234');

test('a minted token verifies with its claims and grants', async () => {
  const token = await service.mint({
    room: 'r1',
    identity: 'alice',
    name: 'Alice',
    grants: { canPinRegion: true },
    ttlSeconds: 60,
  });
  const t = await service.verify(token);
  assert.equal(t.room, 'r1');
  assert.equal(t.identity, 'alice');
  assert.equal(t.name, 'Alice');
  assert.deepEqual(t.grants, {
    canPublish: true,
    canSubscribe: true,
    canPinRegion: true,
    admin: false,
    canChat: true,
    roomCreate: false,
    roomList: false,
    roomAdmin: false,
  });
  assert.ok(t.expiresAt.getTime() > Date.now() + 50_000);
});

test('tokens of another key or secret are invalid', async () => {
  const other = new TokenService('key1', 'another-secret-another-secret-12');
  const token = await other.mint({ room: 'r', identity: 'x' });
  await assert.rejects(
    service.verify(token),
    (e: unknown) => e instanceof SfuError && e.code === 'TOKEN_INVALID',
  );
  const otherKey = await new TokenService('key2', 'secret-secret-secret-secret-1234').mint({
    room: 'r',
    identity: 'x',
  });
  await assert.rejects(
    service.verify(otherKey),
    (e: unknown) => e instanceof SfuError && e.code === 'TOKEN_INVALID',
  );
});

test('missing and garbage tokens have their own codes', async () => {
  await assert.rejects(
    service.verify(undefined),
    (e: unknown) => e instanceof SfuError && e.code === 'TOKEN_MISSING',
  );
  await assert.rejects(
    service.verify('a.b.c'),
    (e: unknown) => e instanceof SfuError && e.code === 'TOKEN_INVALID',
  );
});

test('ttl is bounded', async () => {
  await assert.rejects(service.mint({ room: 'r', identity: 'x', ttlSeconds: 0 }), /ttl/);
  await assert.rejects(service.mint({ room: 'r', identity: 'x', ttlSeconds: 10 * 86400 }), /ttl/);
});

test('durations', () => {
  assert.equal(parseDurationSeconds('90'), 90);
  assert.equal(parseDurationSeconds('15m'), 900);
  assert.equal(parseDurationSeconds('1h'), 3600);
  assert.throws(() => parseDurationSeconds('soon'), /duration/);
});
