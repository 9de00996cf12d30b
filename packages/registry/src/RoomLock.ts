import { createHash, randomBytes } from 'node:crypto';
import type { RedisConnection, ScriptRunner } from '@geosfu/common';
import type { Redis } from 'ioredis';

/**
 * Lifetime of a room lock. Every critical section is three round trips (read the room, one
 * script that writes and publishes, release), so 2 s is far more than it needs; and it is
 * not what keeps the data right: the write script checks that the lock is still ours (see
 * APPLY_SCRIPT), so a holder that stalled past the TTL writes nothing. No auto-extension.
 */
export const ROOM_LOCK_TTL_MS = 2_000;
/** Attempts to take a busy room lock, 20..80 ms apart (about 2.5 s in all), then give up. */
export const ROOM_LOCK_ATTEMPTS = 50;
/** The reap lock covers a whole dead node (many rooms); it is released when done. */
export const REAP_LOCK_TTL_MS = 30_000;
const LOCK_RETRY_MIN_MS = 20;
const LOCK_RETRY_MAX_MS = 80;
/** Deletes a lock only if it still holds our token (redis.io, "Releasing the lock"). */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/**
 * One room mutation, atomic and fenced by the lock: nothing is written unless the lock still
 * holds our token, so a holder that stalled past the lock's TTL (GC pause, a slow Redis)
 * changes nothing. Events are published by the same script, after the write and in lock
 * order, so every node sees a room's events in the order the changes happened (a `joined`
 * can never arrive after the `left` of its own replacement).
 *
 * KEYS[1] room lock, KEYS[2] room sessions hash, KEYS[3..] noderooms sets
 * ARGV[1] lock token, ARGV[2] TTL ms, ARGV[3] room, ARGV[4] room channel, ARGV[5] plan JSON:
 *   { removed: [sessionId], put: [[sessionId, json]], present: [bool per noderooms key],
 *     events: [json] }
 * A hash whose last field is deleted is deleted by Redis itself: empty rooms leave no key.
 */
const WRITE = `
local plan = cjson.decode(ARGV[5])
for _, id in ipairs(plan.removed) do redis.call('HDEL', KEYS[2], id) end
for _, entry in ipairs(plan.put) do redis.call('HSET', KEYS[2], entry[1], entry[2]) end
for i = 3, #KEYS do
  if plan.present[i - 2] then
    redis.call('SADD', KEYS[i], ARGV[3])
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  else
    redis.call('SREM', KEYS[i], ARGV[3])
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
for _, message in ipairs(plan.events) do redis.call('PUBLISH', ARGV[4], message) end
return 1
`;
const APPLY_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
${WRITE}`;

/**
 * A join in one round trip after its read (optimistic): the same write as APPLY_SCRIPT, done
 * only if nobody holds the room's lock (a locked mutation is reading or writing the room)
 * and the sessions hash is still what the caller read, by `roomDigest` (ARGV[1]). Otherwise
 * it returns 0 and the caller reads again. The lock is checked, not taken: a join needs no
 * release, and a locked mutation that starts after this script sees its write.
 */
const CHECKED_WRITE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local all = redis.call('HGETALL', KEYS[2])
local a, b, c = 0, 0, 0
for i = 1, #all, 2 do
  local h = redis.sha1hex(#all[i] .. ':' .. all[i] .. all[i + 1])
  a = bit.bxor(a, tonumber(string.sub(h, 1, 8), 16))
  b = bit.bxor(b, tonumber(string.sub(h, 9, 16), 16))
  c = bit.bxor(c, tonumber(string.sub(h, 17, 24), 16))
end
if bit.tohex(a, 8) .. bit.tohex(b, 8) .. bit.tohex(c, 8) ~= ARGV[1] then return 0 end
${WRITE}`;

/**
 * The digest of a sessions hash that CHECKED_WRITE_SCRIPT recomputes: the XOR of the SHA-1
 * of every entry (field length, ':', field, value; bytes), first 96 bits, in hex. Order-free,
 * so it does not depend on the order HGETALL returns (nor on Lua's locale-aware sorting).
 */
export function roomDigest(entries: readonly (readonly [Buffer, Buffer])[]): string {
  const words = [0, 0, 0];
  for (const [field, value] of entries) {
    const h = createHash('sha1').update(`${field.length}:`).update(field).update(value).digest();
    for (let i = 0; i < 3; i++) words[i] = ((words[i] ?? 0) ^ h.readUInt32BE(i * 4)) >>> 0;
  }
  return words.map((w) => w.toString(16).padStart(8, '0')).join('');
}

/** The room store's scripts, registered on its Redis connection (ioredis defineCommand). */
export interface RoomScripts {
  /** APPLY_SCRIPT: 1 if written, 0 if the lock was no longer ours. */
  apply: ScriptRunner;
  /** RELEASE_SCRIPT on one lock key with its token: 1 if it was ours and is now free. */
  release: ScriptRunner;
  /** CHECKED_WRITE_SCRIPT: 1 if written, 0 if the room was locked or changed since the read. */
  checkedWrite: ScriptRunner;
}

export function defineRoomScripts(redis: RedisConnection): RoomScripts {
  return {
    apply: redis.defineScript('sfuRoomApply', APPLY_SCRIPT),
    release: redis.defineScript('sfuLockRelease', RELEASE_SCRIPT),
    checkedWrite: redis.defineScript('sfuRoomCheckedWrite', CHECKED_WRITE_SCRIPT),
  };
}

/** A failed SET NX: the lock may have been taken anyway (timeout), so its token is kept. */
export class LockAttemptError extends Error {
  override readonly name = 'LockAttemptError';
  readonly key: string;
  readonly token: string;

  constructor(key: string, token: string, cause: unknown) {
    super(`could not reach Redis to take lock ${key}`, { cause });
    this.key = key;
    this.token = token;
  }
}

/**
 * A lock on one key with the single-instance Redlock algorithm, as redis.io describes it in
 * "Distributed Locks with Redis", section "Correct Implementation with a Single Instance"
 * (https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/): SET key token
 * NX PX ttl with a random token; release deletes the key only if it still holds the token.
 *
 * Why not the `redlock` package (checked against ioredis 6.0.0 and TypeScript NodeNext):
 * redlock 4.2.0 runs, but its typings (@types/redlock) reject an ioredis >= 5 client
 * (TS2322 on `eval`, node-redlock#285), it brings bluebird and @types/ioredis 4, its retry
 * timers cannot be cancelled on close, and a Redis failure looks like contention to it (a
 * LockError without cause), so a hung Redis would be retried 50 times instead of failing
 * fast. redlock 5.0.0-beta.2 (2022, unmaintained) cannot be imported with types under
 * NodeNext at all (TS7016: its `exports` map has no `types`). Quorum over several masters,
 * the part of Redlock this does not do, does not apply to our one Redis (or Sentinel).
 */
export class RoomLock {
  readonly key: string;
  readonly token: string;
  /** SET NX round trips it took to get the lock (1 when free). */
  readonly attempts: number;

  private constructor(key: string, token: string, attempts: number) {
    this.key = key;
    this.token = token;
    this.attempts = attempts;
  }

  /**
   * Takes the lock, retrying while someone else holds it; undefined after `attempts`. A
   * Redis error is not retried: it throws LockAttemptError at once (fail fast).
   */
  static async acquire(
    redis: Redis,
    key: string,
    ttlMs: number,
    attempts: number,
    signal: AbortSignal,
  ): Promise<RoomLock | undefined> {
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      const token = randomBytes(16).toString('hex');
      let reply: string | null;
      try {
        reply = await redis.set(key, token, 'PX', ttlMs, 'NX');
      } catch (error) {
        throw new LockAttemptError(key, token, error);
      }
      if (reply === 'OK') return new RoomLock(key, token, attempt);
      if (attempt >= attempts) return undefined;
      await waitBeforeRetry(signal);
    }
  }

  /** True if the lock was still ours and is now free. */
  static async release(scripts: RoomScripts, key: string, token: string): Promise<boolean> {
    return (await scripts.release([key], [token])) === 1;
  }
}

/** The pause before another attempt at a busy room, 20..80 ms; rejects when `signal` aborts. */
export function waitBeforeRetry(signal: AbortSignal): Promise<void> {
  return sleep(LOCK_RETRY_MIN_MS + Math.random() * (LOCK_RETRY_MAX_MS - LOCK_RETRY_MIN_MS), signal);
}

/** A timer that the store owns: cleared when `signal` aborts (on close). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
