import {
  InvalidStateError,
  type LeaveReason,
  LeaveReason as LeaveReasonSchema,
  LIMITS,
  type Logger,
  quitRedis,
  redactRedisUrl,
  redisClientOptions,
  SfuError,
  silentLogger,
  TrackInfo,
  TypedEmitter,
} from '@geosfu/common';
import { Redis, type RedisOptions } from 'ioredis';
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
  SessionRecordSchema,
} from './MemoryRoomStore.js';
import { RejectionLog } from './RejectionLog.js';
import {
  APPLY,
  isReplyError,
  LockAttemptError,
  REAP_LOCK_TTL_MS,
  ROOM_LOCK_ATTEMPTS,
  ROOM_LOCK_TTL_MS,
  RoomLock,
  runScript,
} from './RoomLock.js';
import type {
  JoinResult,
  RoomEvent,
  RoomStore,
  RoomStoreEvents,
  SessionRecord,
} from './RoomStore.js';
import { type JunkEntry, SignedRoomState } from './SignedRoomState.js';

export interface RedisRoomStoreOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://` for TLS. */
  url: string;
  /** Extra ioredis options (TLS, Sentinel ...); the store's own settings below win. */
  redisOptions?: RedisOptions;
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
/** Deadline of every command: a join must not hang on a Redis that does not answer. */
const COMMAND_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
const RECONNECT_MAX_MS = 2_000;
/** How often a store that saw Redis fail checks whether it answers again. */
const PROBE_INTERVAL_MS = 250;

const TrackList = z.array(TrackInfo).max(LIMITS.maxTracksPerParticipant);

/**
 * Room membership in Redis, shared by every node of the cluster.
 *
 * Layout (prefix `sfu:` by default):
 * - `room:{room}:sessions` HASH sessionId -> signed SessionRecord, verified on every read:
 *   an entry that does not verify is never trusted nor counted toward the room limit, and
 *   the next mutation of the room removes it (counted, `rejected`). One session per
 *   identity is found by reading the hash under the lock: rooms are small, and a second
 *   index would be one more thing to keep right.
 * - `noderooms:{nodeId}` SET of the rooms a node has sessions in, for reaping and reassert.
 * - `room:{room}:events` channel of signed RoomEvents, verified on receipt (signature,
 *   freshness, replay; see SignedRoomState); the rest is dropped and counted.
 * - `lock:room:{room}` and `lock:reap:{nodeId}`: see RoomLock.
 * Room hashes and noderooms sets expire ROOM_TTL_MS after their last change.
 *
 * A mutation takes the room's lock, reads the hash, computes the change with RoomDraft (the
 * same code as MemoryRoomStore), and writes it and publishes its events in one script that
 * first checks the lock is still ours (APPLY_SCRIPT). Reads take no lock.
 *
 * Connections: one for commands, one subscribed to the channels of watched rooms. Nothing
 * is queued while Redis is away: operations fail at once with SERVICE_UNAVAILABLE and
 * `connected` is false. A command that fails (a timeout of a hung Redis, a dropped
 * connection) marks the store as down until a PING answers again; then it re-subscribes,
 * frees lock keys it may have left behind, and emits `reconnected` (never on the first
 * connect), so the node can `reassert()` its sessions: a timed-out write may have been done,
 * or not, and events published meanwhile were lost.
 *
 * `origin` of events: the joining node for `join` (also for the `left` of the session it
 * replaces), the session's own node for `leave` and `setTracks` (a node only leaves and
 * updates its own sessions), REAP_ORIGIN for `reapNode`, the reasserting node for
 * `reassert`. `setTracks` of a session that is gone throws NOT_FOUND.
 *
 * Not for Redis Cluster as is: the write script touches the room's keys and other nodes'
 * `noderooms` sets, which would need hash tags to share a slot.
 */
export class RedisRoomStore extends TypedEmitter<RoomStoreEvents> implements RoomStore {
  readonly kind = 'redis';
  readonly keys: RegistryKeys;
  readonly #logger: Logger;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #redisLabel: string;
  /** Aborts lock waits on close. */
  readonly #closeSignal = new AbortController();

  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Channel -> room of every watched room, whether or not its SUBSCRIBE went through yet. */
  readonly #watched = new Map<string, string>();
  /** Channels whose UNSUBSCRIBE failed: unsubscribed again after the outage. */
  readonly #stale = new Set<string>();
  /** Lock key -> token of locks that a failed command may have left taken. */
  readonly #orphanLocks = new Map<string, string>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #signed: SignedRoomState;
  readonly #rejections: RejectionLog;
  /** A command failed and no PING has answered since: refuse operations. */
  #down = false;
  #probeTimer: NodeJS.Timeout | undefined;
  #probing: Promise<void> | undefined;

  constructor(options: RedisRoomStoreOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'rooms' });
    super((event, error) => logger.error({ err: error, event }, 'room store listener threw'));
    this.#logger = logger;
    this.keys = registryKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.#redisLabel = redactRedisUrl(options.url);
    this.#signed = new SignedRoomState(options.secret, this.keys);
    this.#rejections = new RejectionLog(logger, (kind, reason) =>
      this.safeEmit('rejected', kind, reason),
    );

    const redisOptions = redisClientOptions(options.redisOptions, {
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      reconnectMaxMs: RECONNECT_MAX_MS,
    });
    this.#cmd = new Redis(options.url, { ...redisOptions, connectionName: 'sfu-rooms' });
    this.#sub = new Redis(options.url, { ...redisOptions, connectionName: 'sfu-rooms-sub' });
    for (const [client, name] of [
      [this.#cmd, 'connect'],
      [this.#sub, 'subscriber'],
    ] as const) {
      // Without an 'error' listener ioredis prints every failed reconnect to the console.
      client.on('error', (error: Error) => this.#redisError(name, error));
      client.on('close', () => this.#onDown(`${name} connection closed`));
      client.on('ready', () => this.#probeSoon(0));
    }
    this.#sub.on('message', (channel: string, message: string) =>
      this.#onMessage(channel, message),
    );
  }

  get connected(): boolean {
    return (
      this.#state === 'running' &&
      !this.#down &&
      this.#cmd.status === 'ready' &&
      this.#sub.status === 'ready'
    );
  }

  start(): Promise<void> {
    if (this.#state === 'closed' || this.#closing !== undefined) {
      return Promise.reject(new InvalidStateError('the room store is closed'));
    }
    this.#starting ??= this.#start().catch((error: unknown) => {
      this.#starting = undefined; // a later start() may try again
      throw error;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await Promise.all([this.#cmd.connect(), this.#sub.connect()]);
    } catch (error) {
      // ioredis goes on reconnecting after a failed first connect; stop it.
      this.#cmd.disconnect();
      this.#sub.disconnect();
      this.#state = 'new';
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot use Redis at ${this.#redisLabel} for room state: ${(error as Error).message}; check REDIS_URL (or leave it unset for single-node mode)`,
        { cause: error },
      );
    }
    if (this.#state !== 'starting') return; // closed meanwhile
    this.#state = 'running';
    this.#logger.info(
      { redis: this.#redisLabel, prefix: this.keys.prefix },
      'room store connected',
    );
  }

  join(
    room: string,
    session: SessionRecord,
    options: { maxParticipants: number },
  ): Promise<JoinResult> {
    return this.#op('join', async () => {
      checkRoom(room);
      const record = checkArgument(SessionRecordSchema, session, 'session record');
      const max = checkMaxParticipants(options.maxParticipants);
      return this.#mutate(room, (draft) => draft.join(record, max));
    });
  }

  leave(room: string, sessionId: string, reason: LeaveReason): Promise<boolean> {
    return this.#op('leave', async () => {
      checkRoom(room);
      checkArgument(LeaveReasonSchema, reason, 'leave reason');
      return this.#mutate(room, (draft) => draft.leave(sessionId, reason));
    });
  }

  setTracks(room: string, sessionId: string, tracks: TrackInfo[]): Promise<void> {
    return this.#op('setTracks', async () => {
      checkRoom(room);
      const list = checkArgument(TrackList, tracks, 'track list');
      await this.#mutate(room, (draft) => draft.setTracks(sessionId, list));
    });
  }

  chat(room: string, event: Extract<RoomEvent, { type: 'chat' }>): Promise<void> {
    return this.#op('chat', async () => {
      checkRoom(room);
      const parsed = checkArgument(RoomEventSchema, event, 'chat event');
      if (parsed.type !== 'chat') {
        throw new SfuError('INVALID_ARGUMENT', 'chat() takes a chat event');
      }
      await this.#cmd.publish(this.keys.roomChannel(room), this.#signed.sealEvent(room, parsed));
    });
  }

  participants(room: string): Promise<SessionRecord[]> {
    return this.#op('participants', async () => {
      checkRoom(room);
      return new RoomDraft(room, (await this.#read(room)).sessions).sessions;
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
    this.#stale.delete(channel);
    await this.#op('watch', async () => {
      await this.#sub.subscribe(channel);
    });
  }

  /** Stops delivering the room's events at once; the UNSUBSCRIBE itself is best effort. */
  async unwatch(room: string): Promise<void> {
    const channel = this.keys.roomChannel(room);
    if (!this.#watched.delete(channel)) return;
    if (this.#state !== 'running') return;
    try {
      if (this.#sub.status !== 'ready') throw new Error('subscriber connection is down');
      await this.#sub.unsubscribe(channel);
    } catch (error) {
      // Messages of unwatched rooms are dropped anyway; unsubscribe again after the outage.
      this.#stale.add(channel);
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
        const rooms = await this.#cmd.smembers(this.keys.nodeRooms(nodeId));
        // Each room's script removes it from the set once the node has no session left
        // there; no DEL at the end, which could drop rooms that a node taken for dead (a
        // partition) re-added meanwhile.
        const results = await eachRoom(this.#logger, rooms, (room) =>
          this.#mutate(room, (draft) => draft.removeNode(nodeId, 'node-died', REAP_ORIGIN)),
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
      return this.#mutate(room, (draft) => draft.removeOrphans(isOrphan));
    });
  }

  watchedRooms(): string[] {
    return [...this.#watched.values()];
  }

  reassert(nodeId: string, live: ReadonlyMap<string, readonly SessionRecord[]>): Promise<void> {
    return this.#op('reassert', async () => {
      checkNodeId(nodeId);
      const checked = checkLive(nodeId, live);
      const stored = await this.#cmd.smembers(this.keys.nodeRooms(nodeId));
      const rooms = [...new Set([...checked.keys(), ...stored])];
      await eachRoom(this.#logger, rooms, (room) =>
        this.#mutate(room, (draft) => draft.reassert(nodeId, checked.get(room) ?? [])),
      );
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Let a start in progress settle first, so that it does not connect behind us.
    await this.#starting?.catch(() => {
      // start() failed: its error went to whoever called it; closing goes on.
    });
    this.#state = 'closed';
    this.#closeSignal.abort(new InvalidStateError('the room store was closed'));
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    await this.#probing;
    // Operations inside a critical section finish (and free their lock) before the
    // connection goes; lock waits were aborted above. Every command has a deadline.
    await Promise.allSettled([...this.#inflight]);
    await Promise.all([quitRedis(this.#sub), quitRedis(this.#cmd)]);
    this.#watched.clear();
    this.#stale.clear();
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
        `Redis is unreachable (${this.#redisLabel}): cannot ${op} until it is back`,
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
    this.#onDown(`${op} failed: ${err.message}`);
    return new SfuError(
      'SERVICE_UNAVAILABLE',
      `Redis is unreachable (${this.#redisLabel}): ${op} failed (${err.message}); try again when it is back`,
      { cause: err },
    );
  }

  /**
   * One mutation of a room: lock, read, change (RoomDraft), write and publish (one fenced
   * script), unlock. Returns what `change` returned; nothing is written if it throws.
   */
  async #mutate<T>(room: string, change: (draft: RoomDraft) => T): Promise<T> {
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
      const { sessions, junk } = await this.#read(room);
      const draft = new RoomDraft(room, sessions);
      const result = change(draft);
      if (draft.changed || draft.events.length > 0 || junk.length > 0) {
        await this.#apply(lock, draft, junk);
      }
      // Counted once in the cluster: by the node whose fenced write removed them.
      for (const entry of junk) {
        this.#rejections.report('session', entry.reason, entry.detail, {
          room,
          field: entry.field,
        });
      }
      return result;
    } finally {
      await this.#release(lock);
    }
  }

  /** Writes a draft, and removes the room's junk entries (unsigned or forged) with it. */
  async #apply(lock: RoomLock, draft: RoomDraft, junk: readonly JunkEntry[]): Promise<void> {
    const { removed, put } = draft.changes();
    const nodes = [...draft.touchedNodes];
    const { room } = draft;
    const plan = {
      removed: [...removed, ...junk.map((entry) => entry.field)],
      put: put.map((s) => [s.sessionId, this.#signed.sealSession(room, s)]),
      present: nodes.map((node) => draft.hasNode(node)),
      events: draft.events.map((event) => this.#signed.sealEvent(room, event)),
    };
    const keys = [
      lock.key,
      this.keys.roomSessions(draft.room),
      ...nodes.map((node) => this.keys.nodeRooms(node)),
    ];
    const done = await runScript(this.#cmd, APPLY, keys, [
      lock.token,
      ROOM_TTL_MS,
      draft.room,
      this.keys.roomChannel(draft.room),
      JSON.stringify(plan),
    ]);
    if (done !== 1) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `lost the lock on room ${draft.room} before writing (Redis or this process stalled for over ${ROOM_LOCK_TTL_MS} ms); nothing was changed, try again`,
      );
    }
  }

  /** The room's sessions that verify, and the entries that do not (never trusted). */
  async #read(room: string): Promise<ReturnType<SignedRoomState['readSessions']>> {
    return this.#signed.readSessions(room, await this.#cmd.hgetall(this.keys.roomSessions(room)));
  }

  async #acquire(key: string, ttlMs: number, attempts: number): Promise<RoomLock | undefined> {
    try {
      return await RoomLock.acquire(this.#cmd, key, ttlMs, attempts, this.#closeSignal.signal);
    } catch (error) {
      if (!(error instanceof LockAttemptError)) throw error;
      // The SET may have been done although its reply never came: free it when Redis is back.
      this.#orphanLocks.set(error.key, error.token);
      throw error.cause;
    }
  }

  /** Frees a lock; a failure is counted, not thrown (the TTL frees it; so does the probe). */
  async #release(lock: RoomLock): Promise<void> {
    try {
      await RoomLock.release(this.#cmd, lock.key, lock.token);
    } catch (error) {
      this.#orphanLocks.set(lock.key, lock.token);
      this.#redisError('unlock', error);
      if (!isReplyError(error)) this.#onDown(`unlock failed: ${(error as Error).message}`);
    }
  }

  // ---- pub/sub ----------------------------------------------------------------------

  #onMessage(channel: string, message: string): void {
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
  }

  // ---- connection -------------------------------------------------------------------

  /** Redis failed (closed connection, timeout): refuse operations until a PING answers. */
  #onDown(why: string): void {
    if (this.#state !== 'running') return;
    if (!this.#down) {
      this.#down = true;
      this.#logger.warn(
        { redis: this.#redisLabel, why },
        'Redis unreachable: room operations are refused until it answers again',
      );
    }
    this.#probeSoon(PROBE_INTERVAL_MS);
  }

  #probeSoon(delayMs: number): void {
    if (this.#state !== 'running' || !this.#down) return;
    if (this.#probing !== undefined) return; // the running probe schedules the next one if needed
    this.#probeAfter(delayMs);
  }

  #probeAfter(delayMs: number): void {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#probing = this.#probe().finally(() => {
        this.#probing = undefined;
      });
    }, delayMs);
  }

  /**
   * Checks that Redis answers again; if so, restores what the outage may have broken and
   * emits `reconnected`. Otherwise tries again later.
   */
  async #probe(): Promise<void> {
    const back =
      this.#cmd.status === 'ready' &&
      this.#sub.status === 'ready' &&
      (await this.#recover().then(
        () => true,
        (error: unknown) => {
          this.#redisError('probe', error);
          return false;
        },
      ));
    if (this.#state !== 'running') return;
    if (!back) {
      this.#probeAfter(PROBE_INTERVAL_MS);
      return;
    }
    this.#down = false;
    this.#logger.info({ redis: this.#redisLabel }, 'Redis answering again');
    this.safeEmit('reconnected');
  }

  async #recover(): Promise<void> {
    await this.#cmd.ping();
    for (const [key, token] of [...this.#orphanLocks]) {
      await RoomLock.release(this.#cmd, key, token);
      this.#orphanLocks.delete(key);
    }
    // ioredis re-subscribes what it had subscribed before a reconnect; this also covers
    // watch() calls that failed during the outage, and unwatch() calls that did.
    const stale = [...this.#stale].filter((channel) => !this.#watched.has(channel));
    if (stale.length > 0) await this.#sub.unsubscribe(...stale);
    this.#stale.clear();
    const channels = [...this.#watched.keys()];
    if (channels.length > 0) await this.#sub.subscribe(...channels);
  }

  #redisError(op: string, error: unknown): void {
    if (this.#state === 'closed') return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.safeEmit('redisError', op, err);
    this.#logger.debug({ op, err: err.message }, 'Redis error');
  }

  #assertRunning(): void {
    if (this.#state === 'closed' || this.#closing !== undefined) {
      throw new InvalidStateError('the room store is closed');
    }
    if (this.#state !== 'running') {
      throw new InvalidStateError('the room store is not started: await start() first');
    }
  }
}
