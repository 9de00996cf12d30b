import type { RedisConnection } from '@geosfu/common';
import type { RegistryKeys } from './keys.js';
import type { RoomDraft } from './MemoryRoomStore.js';
import { type RoomScripts, roomDigest } from './RoomLock.js';
import type { JunkEntry, SignedRoomState } from './SignedRoomState.js';

type Sessions = ReturnType<SignedRoomState['readSessions']>;

/**
 * One room's sessions hash in Redis (`room:{room}:sessions`, sessionId -> signed
 * SessionRecord), read and verified, and written by plan.
 *
 * Reads verify every entry: one that does not verify is never trusted nor counted toward the
 * room limit (`junk`), and the next write of the room removes it. `readChecked` also returns
 * the digest of what it read, for a write that must find the hash unchanged.
 *
 * A write puts a computed room change (a `RoomDraft`) to Redis in one script: the sessions it put
 * (signed) and removed, the room's junk entries (unsigned or forged) removed with them, the
 * `noderooms` sets it touched, and its events (signed) published. Two scripts, one plan:
 * `underLock` checks that the room's lock is still ours (APPLY_SCRIPT), `ifUnchanged` that the
 * room is unlocked and has the digest it had when read (CHECKED_WRITE_SCRIPT, a join).
 * Both resolve true when written.
 */
export class RoomHash {
  readonly #redis: RedisConnection;
  readonly #keys: RegistryKeys;
  readonly #scripts: RoomScripts;
  readonly #signed: SignedRoomState;
  readonly #ttlMs: number;

  constructor(options: {
    redis: RedisConnection;
    keys: RegistryKeys;
    scripts: RoomScripts;
    signed: SignedRoomState;
    /** Room hashes and noderooms sets expire this long after their last change. */
    ttlMs: number;
  }) {
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#scripts = options.scripts;
    this.#signed = options.signed;
    this.#ttlMs = options.ttlMs;
  }

  /** The room's sessions that verify, and the entries that do not (never trusted). */
  async read(room: string): Promise<Sessions> {
    const hash = await this.#redis.command.hgetall(this.#keys.roomSessions(room));
    return this.#signed.readSessions(room, hash);
  }

  /** The same, with the digest of the hash as read (for `ifUnchanged`). */
  async readChecked(room: string): Promise<Sessions & { digest: string }> {
    const raw = await this.#redis.command.callBuffer('HGETALL', this.#keys.roomSessions(room));
    const entries = pairs(raw);
    const read = this.#signed.readSessions(
      room,
      Object.fromEntries(entries.map(([f, v]) => [f.toString(), v.toString()])),
    );
    return { ...read, digest: roomDigest(entries) };
  }

  async underLock(
    lock: { key: string; token: string },
    draft: RoomDraft,
    junk: readonly JunkEntry[],
  ): Promise<boolean> {
    const done = await this.#scripts.apply(this.#writeKeys(lock.key, draft), [
      lock.token,
      ...this.#writeArgs(draft, junk),
    ]);
    return done === 1;
  }

  async ifUnchanged(
    digest: string,
    draft: RoomDraft,
    junk: readonly JunkEntry[],
  ): Promise<boolean> {
    const done = await this.#scripts.checkedWrite(
      this.#writeKeys(this.#keys.roomLock(draft.room), draft),
      [digest, ...this.#writeArgs(draft, junk)],
    );
    return done === 1;
  }

  /** KEYS of the write scripts: the lock, the sessions hash, the touched `noderooms` sets. */
  #writeKeys(lockKey: string, draft: RoomDraft): string[] {
    return [
      lockKey,
      this.#keys.roomSessions(draft.room),
      ...[...draft.touchedNodes].map((node) => this.#keys.nodeRooms(node)),
    ];
  }

  /** ARGV[2..] of the write scripts: TTL, room, channel, the plan (see RoomLock.ts). */
  #writeArgs(draft: RoomDraft, junk: readonly JunkEntry[]): (string | number)[] {
    const { removed, put } = draft.changes();
    const { room } = draft;
    const plan = {
      removed: [...removed, ...junk.map((entry) => entry.field)],
      put: put.map((s) => [s.sessionId, this.#signed.sealSession(room, s)]),
      present: [...draft.touchedNodes].map((node) => draft.hasNode(node)),
      events: draft.events.map((event) => this.#signed.sealEvent(room, event)),
    };
    return [this.#ttlMs, room, this.#keys.roomChannel(room), JSON.stringify(plan)];
  }
}

/** HGETALL's flat reply of buffers as [field, value] pairs. */
function pairs(raw: unknown): [Buffer, Buffer][] {
  const flat = Array.isArray(raw) ? (raw as Buffer[]) : [];
  const out: [Buffer, Buffer][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as Buffer, flat[i + 1] as Buffer]);
  return out;
}
