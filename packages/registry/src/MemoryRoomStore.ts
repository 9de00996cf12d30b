import {
  InvalidStateError,
  type LeaveReason,
  LeaveReason as LeaveReasonSchema,
  LIMITS,
  type Logger,
  SfuError,
  silentLogger,
  TrackInfo,
  TypedEmitter,
} from '@geosfu/common';
import { z } from 'zod';
import type {
  JoinResult,
  RoomEvent,
  RoomStore,
  RoomStoreEvents,
  SessionChange,
  SessionRecord,
} from './RoomStore.js';

// ---- shared by both stores: schemas and the semantics of every mutation -----------------
//
// The Redis store runs exactly the same RoomDraft methods on a snapshot read under the
// room's lock; only how the snapshot is read and the result written differs. So the two
// cannot drift apart, and the unit tests of this file test the rules of both.

/** Longest room name: the same bound as the `room` claim of an access token. */
export const MAX_ROOM_LENGTH = 128;

/**
 * The `origin` of the `left` events of `reapNode()`. Not a node id (node ids have no ':'),
 * because no node applied these removals locally: every node, the reaper included, must act
 * on them, and a node that was taken for dead (a partition) must see them as someone else's.
 */
export const REAP_ORIGIN = 'cluster:reaper';

/** Same rule as the node's `SFU_NODE_ID` (NodeRecord): it goes into Redis key names. */
const nodeId = z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/, 'letters, digits, dot, dash, underscore');
const sessionId = z.string().min(1).max(LIMITS.maxIdLength);
const origin = z.string().min(1).max(80);

/**
 * A session record as stored and published. Parsed on every read from Redis and on every
 * write by a caller, so that nothing is written that a reader would refuse. Unknown fields
 * are dropped (a newer node may add some during a rolling upgrade).
 */
export const SessionRecordSchema: z.ZodType<SessionRecord> = z.object({
  sessionId,
  identity: z.string().min(1).max(LIMITS.maxNameLength),
  name: z.string().max(LIMITS.maxNameLength),
  nodeId,
  region: z.string().min(1).max(64),
  joinedAt: z.number().int().min(0),
  tracks: z.array(TrackInfo).max(LIMITS.maxTracksPerParticipant),
  metadata: z.string().max(4096).optional(),
});
export const SessionChangeSchema = z.strictObject({
  name: z.string().max(LIMITS.maxNameLength).optional(),
  metadata: z.string().max(4096).optional(),
});

/** A room event as it travels on a room's channel; validated on receipt. */
export const RoomEventSchema: z.ZodType<RoomEvent> = z.discriminatedUnion('type', [
  z.object({ type: z.literal('joined'), origin, session: SessionRecordSchema }),
  z.object({
    type: z.literal('left'),
    origin,
    session: SessionRecordSchema,
    reason: LeaveReasonSchema,
  }),
  z.object({ type: z.literal('tracks'), origin, session: SessionRecordSchema }),
  z.object({
    type: z.literal('chat'),
    origin,
    from: z.object({
      sessionId,
      identity: z.string().min(1).max(LIMITS.maxNameLength),
      name: z.string().max(LIMITS.maxNameLength),
    }),
    text: z.string().max(LIMITS.maxChatLength),
    ts: z.number().int().min(0),
  }),
]);

/** Validates a caller's argument; a bad one is the caller's bug, reported as INVALID_ARGUMENT. */
export function checkArgument<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new SfuError('INVALID_ARGUMENT', `invalid ${what}: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}

export function checkRoom(room: unknown): string {
  if (typeof room !== 'string' || room.length === 0 || room.length > MAX_ROOM_LENGTH) {
    throw new SfuError(
      'INVALID_ARGUMENT',
      `invalid room name ${JSON.stringify(room)}: use 1 to ${MAX_ROOM_LENGTH} characters`,
    );
  }
  return room;
}

export function checkMaxParticipants(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new SfuError(
      'INVALID_ARGUMENT',
      `maxParticipants ${String(value)} must be a positive integer`,
    );
  }
  return value;
}

export function checkNodeId(value: unknown): string {
  return checkArgument(nodeId, value, 'node id');
}

export function checkLive(
  owner: string,
  live: ReadonlyMap<string, readonly SessionRecord[]>,
): Map<string, SessionRecord[]> {
  const out = new Map<string, SessionRecord[]>();
  for (const [room, sessions] of live) {
    checkRoom(room);
    const list = sessions.map((s) => checkArgument(SessionRecordSchema, s, 'session record'));
    for (const s of list) {
      if (s.nodeId !== owner) {
        throw new SfuError(
          'INVALID_ARGUMENT',
          `reassert(${owner}) got session ${s.sessionId} of node ${s.nodeId}: a node reasserts only its own sessions`,
        );
      }
    }
    out.set(room, list);
  }
  return out;
}

/** Participants in a stable order: by join time, then session id. */
export function sortSessions(sessions: Iterable<SessionRecord>): SessionRecord[] {
  return [...sessions].sort(
    (a, b) =>
      a.joinedAt - b.joinedAt ||
      (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0),
  );
}

function sameRecord(a: SessionRecord, b: SessionRecord): boolean {
  // Both went through SessionRecordSchema, so their keys are in the same order.
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * One room's sessions during a mutation: a snapshot taken under the room's lock, changed by
 * exactly one of the methods below, which also collect the events to publish (in order).
 * The store then writes `changes()` and publishes `events`, still under the lock.
 */
export class RoomDraft {
  readonly room: string;
  readonly events: RoomEvent[] = [];
  /** Nodes whose membership in `noderooms` may have changed. */
  readonly touchedNodes = new Set<string>();
  readonly #before: ReadonlyMap<string, SessionRecord>;
  readonly #now: Map<string, SessionRecord>;

  constructor(room: string, current: Iterable<SessionRecord>) {
    this.room = room;
    this.#before = new Map([...current].map((s) => [s.sessionId, s]));
    this.#now = new Map(this.#before);
  }

  /**
   * Whether this change takes the room from nobody to somebody (`opened`) or from somebody
   * to nobody (`emptied`). Under the room's lock exactly one change does each.
   */
  get transition(): 'opened' | 'emptied' | undefined {
    if (this.#before.size === 0 && this.#now.size > 0) return 'opened';
    if (this.#before.size > 0 && this.#now.size === 0) return 'emptied';
    return undefined;
  }

  get sessions(): SessionRecord[] {
    return sortSessions(this.#now.values());
  }

  get(id: string): SessionRecord | undefined {
    return this.#now.get(id);
  }

  hasNode(node: string): boolean {
    for (const s of this.#now.values()) if (s.nodeId === node) return true;
    return false;
  }

  /** What to write: removed session ids and new or changed records. */
  changes(): { removed: string[]; put: SessionRecord[] } {
    const removed = [...this.#before.keys()].filter((id) => !this.#now.has(id));
    const put = [...this.#now.values()].filter((s) => {
      const old = this.#before.get(s.sessionId);
      return !old || !sameRecord(old, s);
    });
    return { removed, put };
  }

  get changed(): boolean {
    const { removed, put } = this.changes();
    return removed.length > 0 || put.length > 0 || this.touchedNodes.size > 0;
  }

  #remove(session: SessionRecord, reason: LeaveReason, eventOrigin: string): void {
    this.#now.delete(session.sessionId);
    this.touchedNodes.add(session.nodeId);
    this.events.push({ type: 'left', origin: eventOrigin, session, reason });
  }

  #put(session: SessionRecord): void {
    this.#now.set(session.sessionId, session);
    this.touchedNodes.add(session.nodeId);
  }

  /**
   * Adds `session`, replacing any other session of its identity (the page refresh): `left`
   * (reason `replaced`, origin the joining node) for each, then `joined`. The limit counts
   * the sessions that remain after the replacement. A join of a session id that is already
   * in the room (a retried join) updates it and publishes `joined` again.
   */
  join(session: SessionRecord, maxParticipants: number): JoinResult {
    const same = this.#now.get(session.sessionId);
    if (same && same.identity !== session.identity) {
      throw new SfuError(
        'INVALID_ARGUMENT',
        `session ${session.sessionId} is already in room ${this.room} as ${same.identity}: session ids must be unique`,
      );
    }
    const replaced: SessionRecord[] = [];
    let others = 0;
    for (const s of this.#now.values()) {
      if (s.sessionId === session.sessionId) continue;
      if (s.identity === session.identity) replaced.push(s);
      else others++;
    }
    if (others >= maxParticipants) {
      throw new SfuError(
        'ROOM_FULL',
        `room ${this.room} has its maximum of ${maxParticipants} participants`,
      );
    }
    // Normally at most one; more only if the data was damaged. The newest is "the" replaced.
    const ordered = sortSessions(replaced);
    for (const old of ordered) this.#remove(old, 'replaced', session.nodeId);
    this.#put(session);
    this.events.push({ type: 'joined', origin: session.nodeId, session });
    return { replaced: ordered.at(-1), participants: this.sessions };
  }

  /** Removes exactly this session; false (and no event) when it is not in the room. */
  leave(id: string, reason: LeaveReason): boolean {
    const session = this.#now.get(id);
    if (!session) return false;
    // Only a session's own node ends it with leave() (other nodes replace or reap it).
    this.#remove(session, reason, session.nodeId);
    return true;
  }

  setTracks(id: string, tracks: TrackInfo[]): void {
    const session = this.#now.get(id);
    if (!session) {
      throw new SfuError(
        'NOT_FOUND',
        `session ${id} is not in room ${this.room}: it left or was replaced`,
      );
    }
    const next = { ...session, tracks };
    this.#put(next);
    this.events.push({ type: 'tracks', origin: session.nodeId, session: next });
  }

  /** Changes a session's name or metadata (room service API); publishes `tracks`. */
  update(id: string, change: SessionChange): void {
    const session = this.#now.get(id);
    if (!session) throw new SfuError('NOT_FOUND', `session ${id} is not in room ${this.room}`);
    const next = { ...session, ...change };
    this.#put(next);
    this.events.push({ type: 'tracks', origin: session.nodeId, session: next });
  }

  /** Removes every session of `node`; returns how many. */
  removeNode(node: string, reason: LeaveReason, eventOrigin: string): number {
    this.touchedNodes.add(node);
    let removed = 0;
    for (const s of sortSessions(this.#now.values())) {
      if (s.nodeId !== node) continue;
      this.#remove(s, reason, eventOrigin);
      removed++;
    }
    return removed;
  }

  /** Removes every session whose node `isOrphan` says is gone (`left`, `node-died`). */
  removeOrphans(isOrphan: (nodeId: string) => boolean): number {
    const nodes = new Set([...this.#now.values()].map((s) => s.nodeId).filter(isOrphan));
    let removed = 0;
    for (const node of nodes) removed += this.removeNode(node, 'node-died', REAP_ORIGIN);
    return removed;
  }

  /**
   * Makes `node`'s sessions in this room exactly `live`: removes the others (`left`, reason
   * `disconnected`), adds missing ones (`joined`), rewrites changed ones (`tracks`). A live
   * session whose identity has a newer session elsewhere (the user refreshed onto another
   * node during the outage) is not added: a `left` (reason `replaced`, origin that newer
   * session's node) tells its node to end it. The room limit is not applied: these
   * sessions were admitted before the outage.
   */
  reassert(node: string, live: readonly SessionRecord[]): void {
    this.touchedNodes.add(node);
    const liveIds = new Set(live.map((s) => s.sessionId));
    for (const s of sortSessions(this.#now.values())) {
      if (s.nodeId === node && !liveIds.has(s.sessionId)) this.#remove(s, 'disconnected', node);
    }
    for (const s of sortSessions(live)) {
      const stored = this.#now.get(s.sessionId);
      if (stored) {
        if (!sameRecord(stored, s)) {
          this.#put(s);
          this.events.push({ type: 'tracks', origin: node, session: s });
        }
        continue;
      }
      const rivals = [...this.#now.values()].filter(
        (o) => o.identity === s.identity && o.sessionId !== s.sessionId,
      );
      const newer = rivals.find((o) => o.joinedAt > s.joinedAt);
      if (newer) {
        this.events.push({ type: 'left', origin: newer.nodeId, session: s, reason: 'replaced' });
        continue;
      }
      for (const old of sortSessions(rivals)) this.#remove(old, 'replaced', node);
      this.#put(s);
      this.events.push({ type: 'joined', origin: node, session: s });
    }
  }
}

// ---- the in-memory store ----------------------------------------------------------------

type HubEvents = { event: [room: string, event: RoomEvent] };

/**
 * The in-memory stand-in for Redis: every room's sessions, and a "channel" that carries
 * room events. One hub per process is the single-node mode; tests share one between
 * several stores to play a cluster in one process.
 *
 * Every mutation runs synchronously from snapshot to publish, so it is atomic on its own:
 * no lock is needed where JavaScript runs one thing at a time.
 */
/** The sessions a committed draft reaped (`left` events of REAP_ORIGIN). */
export function reapedSessions(draft: RoomDraft): SessionRecord[] {
  return draft.events.flatMap((e) =>
    e.type === 'left' && e.origin === REAP_ORIGIN ? [e.session] : [],
  );
}

export class MemoryRoomHub {
  readonly events = new TypedEmitter<HubEvents>();
  readonly #rooms = new Map<string, Map<string, SessionRecord>>();

  draft(room: string): RoomDraft {
    return new RoomDraft(room, this.#rooms.get(room)?.values() ?? []);
  }

  /** Writes a draft and publishes its events. */
  commit(draft: RoomDraft): void {
    const { removed, put } = draft.changes();
    let sessions = this.#rooms.get(draft.room);
    for (const id of removed) sessions?.delete(id);
    for (const s of put) {
      if (!sessions) {
        sessions = new Map();
        this.#rooms.set(draft.room, sessions);
      }
      sessions.set(s.sessionId, s);
    }
    if (sessions?.size === 0) this.#rooms.delete(draft.room);
    for (const event of draft.events) this.publish(draft.room, event);
  }

  publish(room: string, event: RoomEvent): void {
    this.events.safeEmit('event', room, event);
  }

  sessions(room: string): SessionRecord[] {
    return sortSessions(this.#rooms.get(room)?.values() ?? []);
  }

  /** Every room with sessions. */
  rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Rooms in which `node` has sessions. */
  roomsOf(node: string): string[] {
    const out: string[] = [];
    for (const [room, sessions] of this.#rooms) {
      for (const s of sessions.values()) {
        if (s.nodeId === node) {
          out.push(room);
          break;
        }
      }
    }
    return out;
  }
}

export interface MemoryRoomStoreOptions {
  /** Share a hub between stores of one process (tests); default: a private one. */
  hub?: MemoryRoomHub;
  logger?: Logger;
}

/**
 * Room membership without Redis (single-node mode, and tests): the same interface and the
 * same rules as RedisRoomStore (see RoomDraft). Events of watched rooms are emitted after
 * the operation returns (queueMicrotask), as they would arrive from Redis, never from
 * inside it. Returned records and events are copies: callers cannot change the store.
 */
export class MemoryRoomStore extends TypedEmitter<RoomStoreEvents> implements RoomStore {
  readonly kind = 'memory';
  readonly hub: MemoryRoomHub;
  readonly #logger: Logger;
  readonly #watched = new Set<string>();
  readonly #offHub: () => void;
  #closed = false;

  constructor(options: MemoryRoomStoreOptions = {}) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'rooms' });
    super((event, error) => logger.error({ err: error, event }, 'room store listener threw'));
    this.#logger = logger;
    this.hub = options.hub ?? new MemoryRoomHub();
    this.#offHub = this.hub.events.on('event', (room, event) => {
      if (!this.#watched.has(room)) return;
      const copy = structuredClone(event);
      queueMicrotask(() => {
        // Checked again: an unwatch() or close() in between stops delivery, as in Redis.
        if (!this.#closed && this.#watched.has(room)) this.safeEmit('event', room, copy);
      });
    });
  }

  get connected(): boolean {
    return !this.#closed;
  }

  async start(): Promise<void> {
    this.#assertOpen();
  }

  async join(
    room: string,
    session: SessionRecord,
    options: { maxParticipants: number; watching?: Promise<void> },
  ): Promise<JoinResult> {
    this.#assertOpen();
    checkRoom(room);
    const record = checkArgument(SessionRecordSchema, session, 'session record');
    const max = checkMaxParticipants(options.maxParticipants);
    await options.watching;
    this.#assertOpen();
    const draft = this.hub.draft(room);
    const result = draft.join(record, max);
    this.#commit(draft);
    return structuredClone(result);
  }

  async leave(room: string, sessionId: string, reason: LeaveReason): Promise<boolean> {
    this.#assertOpen();
    checkRoom(room);
    checkArgument(LeaveReasonSchema, reason, 'leave reason');
    const draft = this.hub.draft(room);
    if (!draft.leave(sessionId, reason)) return false;
    this.#commit(draft);
    return true;
  }

  async setTracks(room: string, sessionId: string, tracks: TrackInfo[]): Promise<void> {
    this.#assertOpen();
    checkRoom(room);
    const list = checkArgument(
      z.array(TrackInfo).max(LIMITS.maxTracksPerParticipant),
      tracks,
      'track list',
    );
    const draft = this.hub.draft(room);
    draft.setTracks(sessionId, list);
    this.#commit(draft);
  }

  async updateSession(room: string, sessionId: string, change: SessionChange): Promise<void> {
    this.#assertOpen();
    const draft = this.hub.draft(checkRoom(room));
    draft.update(sessionId, checkArgument(SessionChangeSchema, change, 'session change'));
    this.#commit(draft);
  }

  async chat(room: string, event: Extract<RoomEvent, { type: 'chat' }>): Promise<void> {
    this.#assertOpen();
    checkRoom(room);
    const parsed = checkArgument(RoomEventSchema, event, 'chat event');
    if (parsed.type !== 'chat') throw new SfuError('INVALID_ARGUMENT', 'chat() takes a chat event');
    this.hub.publish(room, parsed);
  }

  async participants(room: string): Promise<SessionRecord[]> {
    this.#assertOpen();
    checkRoom(room);
    return structuredClone(this.hub.sessions(room));
  }

  async rooms(): Promise<string[]> {
    this.#assertOpen();
    return this.hub.rooms();
  }

  async watch(room: string): Promise<void> {
    this.#assertOpen();
    this.#watched.add(checkRoom(room));
  }

  async unwatch(room: string): Promise<void> {
    this.#watched.delete(room);
  }

  async reapNode(node: string): Promise<number> {
    this.#assertOpen();
    checkNodeId(node);
    let removed = 0;
    for (const room of this.hub.roomsOf(node)) {
      const draft = this.hub.draft(room);
      removed += draft.removeNode(node, 'node-died', REAP_ORIGIN);
      this.#commit(draft);
    }
    if (removed > 0) this.#logger.info({ node, sessions: removed }, 'reaped a dead node');
    return removed;
  }

  async reapOrphans(room: string, isOrphan: (nodeId: string) => boolean): Promise<number> {
    this.#assertOpen();
    const draft = this.hub.draft(checkRoom(room));
    const removed = draft.removeOrphans(isOrphan);
    this.#commit(draft);
    return removed;
  }

  /**
   * Commits a draft; then says which sessions it reaped and whether it opened or emptied the
   * room (our own change only), in that order, as RedisRoomStore does.
   */
  #commit(draft: RoomDraft): void {
    this.hub.commit(draft);
    const reaped = structuredClone(reapedSessions(draft));
    const transition = draft.transition;
    queueMicrotask(() => {
      for (const session of reaped) this.safeEmit('reaped', draft.room, session);
      if (transition) this.safeEmit(transition, draft.room);
    });
  }

  watchedRooms(): string[] {
    return [...this.#watched];
  }

  async reassert(node: string, live: ReadonlyMap<string, readonly SessionRecord[]>): Promise<void> {
    this.#assertOpen();
    checkNodeId(node);
    const checked = checkLive(node, live);
    const rooms = new Set([...checked.keys(), ...this.hub.roomsOf(node)]);
    for (const room of rooms) {
      const draft = this.hub.draft(room);
      draft.reassert(node, checked.get(room) ?? []);
      this.#commit(draft);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offHub();
    this.#watched.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the room store is closed');
  }
}
