import {
  InvalidStateError,
  isReplyError,
  type LeaveReason,
  LeaveReason as LeaveReasonSchema,
  LIMITS,
  Lifecycle,
  type Logger,
  type RedisConnection,
  SfuError,
  silentLogger,
  TrackInfo,
  TypedEmitter,
} from '@geosfu/common';
import { z } from 'zod';
import { eachRoom } from './eachRoom.js';
import { DEFAULT_KEY_PREFIX, type RegistryKeys, registryKeys } from './keys.js';
import {
  checkArgument,
  checkLive,
  checkMaxParticipants,
  checkNodeId,
  checkRoom,
  REAP_ORIGIN,
  RoomDraft,
  RoomEventSchema,
  reapedSessions,
  SessionChangeSchema,
  SessionRecordSchema,
} from './MemoryRoomStore.js';
import { RejectionLog } from './RejectionLog.js';
import { RoomHash } from './RoomHash.js';
import {
  defineRoomScripts,
  LockAttemptError,
  REAP_LOCK_TTL_MS,
  ROOM_LOCK_ATTEMPTS,
  ROOM_LOCK_TTL_MS,
  RoomLock,
  type RoomScripts,
  waitBeforeRetry,
} from './RoomLock.js';
import type {
  JoinResult,
  RoomEvent,
  RoomStore,
  RoomStoreEvents,
  SessionChange,
  SessionRecord,
} from './RoomStore.js';
import { type JunkEntry, SignedRoomState } from './SignedRoomState.js';

export interface RedisRoomStoreOptions {
  /** The process's Redis connection (started by the store if needed, closed by its owner). */
  redis: RedisConnection;
  /** Prefix of every key and channel; default `sfu:`. Tests use one per suite. */
  keyPrefix?: string;
  /** SFU_CLUSTER_SECRET: signs session records and room events (see SignedRoomState). */
  secret: string;
  logger?: Logger;
}

/**
 * Room hashes and `noderooms` sets expire this long after their last change, so that the
 * state of a room that every node forgot (all of them crashed, a bug) does not stay forever.
 * A room that sees no join, leave or track change for a whole day loses its entry; a node
 * restores its sessions with `reassert()`.
 */
export const ROOM_TTL_MS = 24 * 60 * 60 * 1000;

const TrackList = z.array(TrackInfo).max(LIMITS.maxTracksPerParticipant);

/**
 * Room membership in Redis, shared by every node of the cluster.
 *
 * Layout (prefix `sfu:` by default):
 * - `room:{room}:sessions` HASH sessionId -> signed SessionRecord (`RoomHash`); junk entries
 *   are counted (`rejected`). One session per identity is found by reading the hash: rooms
 *   are small, and a second index would be one more thing to keep right.
 * - `noderooms:{nodeId}` SET of the rooms a node has sessions in, for reaping and reassert.
 * - `room:{room}:events` channel of signed RoomEvents, verified on receipt (signature,
 *   freshness, replay; see SignedRoomState); the rest is dropped and counted.
 * - `lock:room:{room}` and `lock:reap:{nodeId}`: see RoomLock.
 * Room hashes and noderooms sets expire ROOM_TTL_MS after their last change.
 *
 * A mutation takes the room's lock, reads the hash, computes the change with RoomDraft (the
 * same code as MemoryRoomStore), and writes it and publishes its events in one script that
 * first checks the lock is still ours (APPLY_SCRIPT). A join, the one mutation on the path of
 * a user waiting, skips the lock: it reads, computes, and writes with a script that checks
 * the room is unlocked and unchanged since the read (CHECKED_WRITE_SCRIPT), two round trips
 * instead of four. Reads take no lock.
 *
 * Connection: the process's `RedisConnection`, which subscribes the watched rooms'
 * channels again after an outage. Nothing is queued while Redis is away: operations fail at
 * once with SERVICE_UNAVAILABLE and `connected` is false. A command that fails without a
 * reply (a timeout of a hung Redis, a dropped connection) takes the connection down until a
 * PING answers again; when it is `up`, the store frees lock keys it may have left behind
 * and emits `reconnected` (never on the first connect), so the node can `reassert()` its
 * sessions: a timed-out write may have been done, or not, and events published meanwhile
 * were lost.
 *
 * `origin` of events: the joining node for `join` (also for the `left` of the session it
 * replaces), the session's own node for `leave` and `setTracks` (a node only leaves and
 * updates its own sessions), REAP_ORIGIN for `reapNode`, the reasserting node for
 * `reassert`. `setTracks` of a session that is gone throws NOT_FOUND. Not for Redis Cluster
 * as is (docs/ARCHITECTURE.md: the write script touches other nodes' `noderooms` sets).
 */
export class RedisRoomStore extends TypedEmitter<RoomStoreEvents> implements RoomStore {
  readonly kind = 'redis';
  readonly keys: RegistryKeys;
  readonly #logger: Logger;
  readonly #redis: RedisConnection;
  readonly #scripts: RoomScripts;
  /** Aborts lock waits on close. */
  readonly #closeSignal = new AbortController();

  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  readonly #life = new Lifecycle('the room store', () => this.#start());
  /** Channel -> room of every watched room, whether or not its SUBSCRIBE went through yet. */
  readonly #watched = new Map<string, string>();
  /** Lock key -> token of locks that a failed command may have left taken. */
  readonly #orphanLocks = new Map<string, string>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #signed: SignedRoomState;
  readonly #hash: RoomHash;
  readonly #rejections: RejectionLog;
  /** Redis went down and the store has not recovered since (see #recover): refuse operations. */
  #down = false;
  #recovering: Promise<void> | undefined;
  readonly #unlisten: (() => void)[] = [];

  constructor(options: RedisRoomStoreOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'rooms' });
    super((event, error) => logger.error({ err: error, event }, 'room store listener threw'));
    this.#logger = logger;
    this.keys = registryKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.#redis = options.redis;
    this.#scripts = defineRoomScripts(options.redis);
    this.#signed = new SignedRoomState(options.secret, this.keys);
    this.#hash = new RoomHash({
      redis: options.redis,
      keys: this.keys,
      scripts: this.#scripts,
      signed: this.#signed,
      ttlMs: ROOM_TTL_MS,
    });
    this.#rejections = new RejectionLog(logger, (kind, reason) =>
      this.safeEmit('rejected', kind, reason),
    );

    this.#unlisten.push(
      this.#redis.on('down', () => {
        this.#down = true;
      }),
      this.#redis.on('up', () => this.#onUp()),
    );
  }

  get connected(): boolean {
    return this.#state === 'running' && !this.#down && this.#redis.connected;
  }

  start(): Promise<void> {
    return this.#life.start();
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await this.#redis.start();
    } catch (error) {
      this.#state = 'new';
      throw error;
    }
    if (this.#state !== 'starting') return; // closed meanwhile
    this.#state = 'running';
    this.#logger.info(
      { redis: this.#redis.label, prefix: this.keys.prefix },
      'room store connected',
    );
  }

  /**
   * Two round trips: the read (with `watching`, the room's SUBSCRIBE, at the same time) and
   * one script that writes only if the room is unlocked and unchanged since the read
   * (CHECKED_WRITE_SCRIPT); a conflict reads again, up to ROOM_LOCK_ATTEMPTS times. Starting
   * the SUBSCRIBE with the read is safe because the write waits for both: a change between
   * the read and the subscription makes the write fail its check and the join read again,
   * and every change after the write arrives on the channel.
   */
  join(
    room: string,
    session: SessionRecord,
    options: { maxParticipants: number; watching?: Promise<void> },
  ): Promise<JoinResult> {
    return this.#op('join', async () => {
      checkRoom(room);
      const record = checkArgument(SessionRecordSchema, session, 'session record');
      const max = checkMaxParticipants(options.maxParticipants);
      return this.#checkedMutate(room, (draft) => draft.join(record, max), options.watching);
    });
  }

  leave(room: string, sessionId: string, reason: LeaveReason): Promise<boolean> {
    return this.#op('leave', async () => {
      checkRoom(room);
      checkArgument(LeaveReasonSchema, reason, 'leave reason');
      return this.#mutate('leave', room, (draft) => draft.leave(sessionId, reason));
    });
  }

  setTracks(room: string, sessionId: string, tracks: TrackInfo[]): Promise<void> {
    return this.#op('setTracks', async () => {
      checkRoom(room);
      const list = checkArgument(TrackList, tracks, 'track list');
      await this.#mutate('setTracks', room, (draft) => draft.setTracks(sessionId, list));
    });
  }

  updateSession(room: string, sessionId: string, change: SessionChange): Promise<void> {
    return this.#op('updateSession', async () => {
      checkRoom(room);
      const checked = checkArgument(SessionChangeSchema, change, 'session change');
      await this.#mutate('updateSession', room, (draft) => draft.update(sessionId, checked));
    });
  }

  chat(room: string, event: Extract<RoomEvent, { type: 'chat' }>): Promise<void> {
    return this.#op('chat', async () => {
      checkRoom(room);
      const parsed = checkArgument(RoomEventSchema, event, 'chat event');
      if (parsed.type !== 'chat') {
        throw new SfuError('INVALID_ARGUMENT', 'chat() takes a chat event');
      }
      await this.#redis.command.publish(
        this.keys.roomChannel(room),
        this.#signed.sealEvent(room, parsed),
      );
    });
  }

  participants(room: string): Promise<SessionRecord[]> {
    return this.#op('participants', async () => {
      checkRoom(room);
      return new RoomDraft(room, (await this.#hash.read(room)).sessions).sessions;
    });
  }

  rooms(): Promise<string[]> {
    return this.#op('rooms', async () => {
      const prefix = this.keys.roomSessions('');
      const head = prefix.slice(0, prefix.indexOf(':sessions'));
      const out = new Set<string>();
      let cursor = '0';
      do {
        const [next, keys] = await this.#redis.command.scan(
          cursor,
          'MATCH',
          `${head}*:sessions`,
          'COUNT',
          500,
        );
        cursor = next;
        for (const key of keys) out.add(key.slice(head.length, -':sessions'.length));
      } while (cursor !== '0');
      return [...out].sort();
    });
  }

  /**
   * Subscribes to the room's channel. Idempotent (not counted: one unwatch() ends it). If
   * Redis is away it throws SERVICE_UNAVAILABLE, but the room stays watched and is
   * subscribed when Redis is back; unwatch() drops it.
   */
  async watch(room: string): Promise<void> {
    checkRoom(room);
    this.#assertRunning();
    const channel = this.keys.roomChannel(room);
    this.#watched.set(channel, room);
    try {
      // Registered with the connection even when Redis is away: subscribed once it is back.
      await this.#redis.subscribe(channel, this.#onMessage);
    } catch (error) {
      throw this.#failure('watch', error);
    }
  }

  /** Stops delivering the room's events at once; the UNSUBSCRIBE itself is best effort. */
  async unwatch(room: string): Promise<void> {
    const channel = this.keys.roomChannel(room);
    if (!this.#watched.delete(channel)) return;
    if (this.#state !== 'running') return;
    try {
      await this.#redis.unsubscribe(channel, this.#onMessage);
    } catch (error) {
      // Messages of unwatched rooms are dropped anyway; the connection unsubscribes it
      // again after the outage.
      this.#redisError('unwatch', error);
    }
  }

  reapNode(nodeId: string): Promise<number> {
    return this.#op('reapNode', async () => {
      checkNodeId(nodeId);
      const lock = await this.#acquire(this.keys.reapLock(nodeId), REAP_LOCK_TTL_MS, 1);
      if (!lock) {
        this.#logger.debug({ node: nodeId }, 'another node is reaping this node');
        return 0;
      }
      try {
        const rooms = await this.#redis.command.smembers(this.keys.nodeRooms(nodeId));
        // Each room's script removes it from the set once the node has no session left
        // there; no DEL at the end, which could drop rooms that a node taken for dead (a
        // partition) re-added meanwhile.
        const results = await eachRoom(this.#logger, rooms, (room) =>
          this.#mutate('reapNode', room, (draft) =>
            draft.removeNode(nodeId, 'node-died', REAP_ORIGIN),
          ),
        );
        // Logged by the caller, which knows why the node is taken for dead.
        return results.reduce((sum, n) => sum + n, 0);
      } finally {
        await this.#release(lock);
      }
    });
  }

  reapOrphans(room: string, isOrphan: (nodeId: string) => boolean): Promise<number> {
    return this.#op('reapOrphans', async () => {
      checkRoom(room);
      return this.#mutate('reapOrphans', room, (draft) => draft.removeOrphans(isOrphan));
    });
  }

  watchedRooms(): string[] {
    return [...this.#watched.values()];
  }

  reassert(nodeId: string, live: ReadonlyMap<string, readonly SessionRecord[]>): Promise<void> {
    return this.#op('reassert', async () => {
      checkNodeId(nodeId);
      const checked = checkLive(nodeId, live);
      const stored = await this.#redis.command.smembers(this.keys.nodeRooms(nodeId));
      const rooms = [...new Set([...checked.keys(), ...stored])];
      await eachRoom(this.#logger, rooms, (room) =>
        this.#mutate('reassert', room, (draft) => draft.reassert(nodeId, checked.get(room) ?? [])),
      );
    });
  }

  close(): Promise<void> {
    return this.#life.close(() => this.#close());
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    this.#closeSignal.abort(new InvalidStateError('the room store was closed'));
    for (const off of this.#unlisten.splice(0)) off();
    await this.#recovering;
    // Operations inside a critical section finish (and free their lock) before we leave
    // the connection; lock waits were aborted above. Every command has a deadline.
    await Promise.allSettled([...this.#inflight]);
    // Best effort: the connection's owner may close it right after (or already did).
    await Promise.allSettled(
      [...this.#watched.keys()].map((channel) => this.#redis.unsubscribe(channel, this.#onMessage)),
    );
    this.#watched.clear();
    this.#logger.debug('room store closed');
  }

  // ---- operations -------------------------------------------------------------------

  /**
   * Runs one public operation: refuses it at once while Redis is away, tracks it so that
   * close() can wait for it, and turns Redis failures into SERVICE_UNAVAILABLE.
   */
  async #op<T>(op: string, run: () => Promise<T>): Promise<T> {
    this.#assertRunning();
    if (!this.connected) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `Redis is unreachable (${this.#redis.label}): cannot ${op} until it is back`,
      );
    }
    const running = run();
    this.#inflight.add(running);
    try {
      return await running;
    } catch (error) {
      throw this.#failure(op, error);
    } finally {
      this.#inflight.delete(running);
    }
  }

  #failure(op: string, error: unknown): Error {
    if (error instanceof SfuError || error instanceof InvalidStateError) return error;
    const err = error instanceof Error ? error : new Error(String(error));
    this.#redisError(op, err);
    if (isReplyError(err)) {
      return new SfuError('INTERNAL', `Redis refused ${op}: ${err.message}`, { cause: err });
    }
    this.#redis.commandFailed(op, err);
    return new SfuError(
      'SERVICE_UNAVAILABLE',
      `Redis is unreachable (${this.#redis.label}): ${op} failed (${err.message}); try again when it is back`,
      { cause: err },
    );
  }

  /**
   * A mutation without the lock (join): read, change, write if nothing changed meanwhile.
   * Counts its round trips (`roundTrips`): two when uncontended.
   */
  async #checkedMutate<T>(
    room: string,
    change: (draft: RoomDraft) => T,
    watching: Promise<void> | undefined,
  ): Promise<T> {
    let trips = 0;
    for (let attempt = 1; ; attempt++) {
      const [{ sessions, junk, digest }] = await Promise.all([
        this.#hash.readChecked(room),
        watching,
      ]);
      trips++;
      const draft = new RoomDraft(room, sessions);
      const result = change(draft);
      if (!draft.changed && draft.events.length === 0 && junk.length === 0) {
        this.safeEmit('roundTrips', 'join', trips);
        return result;
      }
      const written = await this.#hash.ifUnchanged(digest, draft, junk);
      trips++;
      if (written) {
        this.#tellWritten(draft);
        this.#reportJunk(room, junk);
        this.safeEmit('roundTrips', 'join', trips);
        return result;
      }
      if (attempt >= ROOM_LOCK_ATTEMPTS) {
        throw new SfuError(
          'SERVICE_UNAVAILABLE',
          `room ${room} is busy: it changed or was locked on each of ${ROOM_LOCK_ATTEMPTS} attempts; try again`,
        );
      }
      await waitBeforeRetry(this.#closeSignal.signal);
    }
  }

  /**
   * One mutation of a room: lock, read, change (RoomDraft), write and publish (one fenced
   * script), unlock. Returns what `change` returned; nothing is written if it throws.
   */
  async #mutate<T>(op: string, room: string, change: (draft: RoomDraft) => T): Promise<T> {
    const lock = await this.#acquire(
      this.keys.roomLock(room),
      ROOM_LOCK_TTL_MS,
      ROOM_LOCK_ATTEMPTS,
    );
    if (!lock) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `room ${room} is busy: its lock was not free after ${ROOM_LOCK_ATTEMPTS} attempts; try again`,
      );
    }
    try {
      const { sessions, junk } = await this.#hash.read(room);
      const draft = new RoomDraft(room, sessions);
      const result = change(draft);
      const write = draft.changed || draft.events.length > 0 || junk.length > 0;
      if (write) await this.#apply(lock, draft, junk);
      this.#reportJunk(room, junk);
      await this.#release(lock);
      // The lock's SET NX attempts, the read, the write, the release.
      this.safeEmit('roundTrips', op, lock.attempts + (write ? 3 : 2));
      return result;
    } catch (error) {
      await this.#release(lock);
      throw error;
    }
  }

  /** Counted once in the cluster: by the node whose write removed them. */
  #reportJunk(room: string, junk: readonly JunkEntry[]): void {
    for (const entry of junk) {
      this.#rejections.report('session', entry.reason, entry.detail, { room, field: entry.field });
    }
  }

  /** Writes a draft, and removes the room's junk entries (unsigned or forged) with it. */
  async #apply(lock: RoomLock, draft: RoomDraft, junk: readonly JunkEntry[]): Promise<void> {
    if (!(await this.#hash.underLock(lock, draft, junk))) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `lost the lock on room ${draft.room} before writing (Redis or this process stalled for over ${ROOM_LOCK_TTL_MS} ms); nothing was changed, try again`,
      );
    }
    this.#tellWritten(draft);
  }

  /**
   * What a written draft did, told to this process only (the one whose write did it): the
   * sessions it reaped, and whether it opened or emptied the room.
   */
  #tellWritten(draft: RoomDraft): void {
    for (const session of reapedSessions(draft)) this.safeEmit('reaped', draft.room, session);
    const transition = draft.transition;
    if (transition) this.safeEmit(transition, draft.room);
  }

  async #acquire(key: string, ttlMs: number, attempts: number): Promise<RoomLock | undefined> {
    try {
      const { signal } = this.#closeSignal;
      return await RoomLock.acquire(this.#redis.command, key, ttlMs, attempts, signal);
    } catch (error) {
      if (!(error instanceof LockAttemptError)) throw error;
      // The SET may have been done although its reply never came: free it when Redis is back.
      this.#orphanLocks.set(error.key, error.token);
      throw error.cause;
    }
  }

  /** Frees a lock; a failure is counted, not thrown (the TTL frees it; so does #recover). */
  async #release(lock: RoomLock): Promise<void> {
    try {
      await RoomLock.release(this.#scripts, lock.key, lock.token);
    } catch (error) {
      this.#orphanLocks.set(lock.key, lock.token);
      this.#redisError('unlock', error);
      this.#redis.commandFailed('unlock', error);
    }
  }

  // ---- pub/sub ----------------------------------------------------------------------

  readonly #onMessage = (message: string, channel: string): void => {
    if (this.#state !== 'running') return;
    const room = this.#watched.get(channel);
    if (room === undefined) return; // an unwatched room whose UNSUBSCRIBE has not gone through
    const opened = this.#signed.openEvent(channel, message);
    if (!opened.ok) {
      // Not from a node of this cluster (a forger with Redis access, a replay, a node with
      // another secret or version): dropped and counted, never let into the node.
      this.#rejections.report('room-event', opened.reason, opened.detail, { room });
      return;
    }
    this.safeEmit('event', room, opened.value);
  };

  // ---- connection -------------------------------------------------------------------

  /** Redis answers again and the watched rooms are subscribed again (RedisConnection). */
  #onUp(): void {
    if (this.#state !== 'running') return;
    this.#recovering ??= this.#recover().finally(() => {
      this.#recovering = undefined;
    });
  }

  /**
   * Frees the locks that failed commands may have left taken, then emits `reconnected`. A
   * failure takes the connection down again; its next `up` brings us back here.
   */
  async #recover(): Promise<void> {
    for (const [key, token] of [...this.#orphanLocks]) {
      try {
        await RoomLock.release(this.#scripts, key, token);
      } catch (error) {
        this.#redisError('probe', error);
        if (!isReplyError(error)) {
          this.#redis.commandFailed('probe', error);
          return;
        }
        // Redis answered but refused (a bug): the lock's TTL frees it; do not retry forever.
      }
      this.#orphanLocks.delete(key);
    }
    if (this.#state !== 'running' || !this.#redis.connected) return; // the next up retries
    this.#down = false;
    this.#logger.info({ redis: this.#redis.label }, 'room store usable again');
    this.safeEmit('reconnected');
  }

  #redisError(op: string, error: unknown): void {
    if (this.#state === 'closed') return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.safeEmit('redisError', op, err);
    this.#logger.debug({ op, err: err.message }, 'Redis error');
  }

  #assertRunning(): void {
    if (this.#state === 'closed' || this.#life.closing) {
      throw new InvalidStateError('the room store is closed');
    }
    if (this.#state !== 'running') {
      throw new InvalidStateError('the room store is not started: await start() first');
    }
  }
}
