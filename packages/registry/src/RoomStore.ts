import type {
  ClusterRejectKind,
  ClusterRejectReason,
  LeaveReason,
  TrackInfo,
  TypedEmitter,
} from '@geosfu/common';

/** One session in a room, as every node of the cluster sees it. */
export interface SessionRecord {
  sessionId: string;
  identity: string;
  name: string;
  nodeId: string;
  region: string;
  /** Epoch ms. */
  joinedAt: number;
  tracks: TrackInfo[];
  /** Set through the room service API. */
  metadata?: string;
}

/** What the room service API may change of a session. */
export interface SessionChange {
  name?: string;
  metadata?: string;
}

/**
 * What happens in a room, published on the room's channel to every node that has
 * participants in it. `origin` is the node that made the change, so a node can tell its own
 * changes (already applied locally) from the others'.
 */
export type RoomEvent =
  | { type: 'joined'; origin: string; session: SessionRecord }
  | { type: 'left'; origin: string; session: SessionRecord; reason: LeaveReason }
  | { type: 'tracks'; origin: string; session: SessionRecord }
  | {
      type: 'chat';
      origin: string;
      from: { sessionId: string; identity: string; name: string };
      text: string;
      ts: number;
    };

export type RoomStoreEvents = {
  /** An event of a room this node watches (including this node's own changes). */
  event: [room: string, event: RoomEvent];
  /** A store operation failed and was recovered from, for `sfu_redis_errors_total{op}`. */
  redisError: [op: string, error: Error];
  /** The connection to the store came back after an outage: time to `reassert()`. */
  reconnected: [];
  /**
   * The sequential Redis round trips one operation took (`join`: two when uncontended), for
   * `sfu_redis_round_trips{op}`. Never from the memory store.
   */
  roundTrips: [op: string, trips: number];
  /**
   * Room state that did not verify (a forged or replayed event, a junk session record that
   * was removed), for `sfu_cluster_messages_rejected_total`. Never from the memory store.
   */
  rejected: [kind: ClusterRejectKind, reason: ClusterRejectReason];
  /**
   * This store's own reap removed a dead node's session (`left`, `node-died`): emitted only
   * by the store that did the reap, so the cluster hears of each such removal once.
   */
  reaped: [room: string, session: SessionRecord];
  /** This store's own change took the room from no session to one (under its lock: once). */
  opened: [room: string];
  /** This store's own change removed the room's last session (under its lock: once). */
  emptied: [room: string];
};

export interface JoinResult {
  /** The session of the same identity that this join replaced (the page-refresh case). */
  replaced: SessionRecord | undefined;
  /** Everyone in the room after the join, the new session included. */
  participants: SessionRecord[];
}

/**
 * Room membership shared across the cluster. Every mutation of a room is atomic across nodes
 * (on Redis: under a lock on the room, or, for a join, one script that writes only if the
 * room is unlocked and unchanged since its read), so concurrent joins from several nodes
 * cannot exceed the room limit or leave two sessions of one identity; reads need no lock.
 *
 * Invariants, for every implementation:
 * - a room holds at most one session per identity; `join` replaces an older one atomically
 *   and publishes `left` (reason `replaced`) for it before `joined` for the new one;
 * - `leave` removes exactly the given session id and is a no-op (returns false) when that
 *   session is already gone, so an old session's late leave never removes a newer one;
 * - every successful mutation publishes its event on the room's channel;
 * - the limit counts sessions after replacement: a refresh never counts twice.
 */
export interface RoomStore extends TypedEmitter<RoomStoreEvents> {
  readonly kind: 'redis' | 'memory';
  /** Whether the store is reachable now (joins are refused while it is not). */
  readonly connected: boolean;
  start(): Promise<void>;
  /**
   * Adds a session, atomically (see above). Throws SfuError ROOM_FULL when the room has
   * `maxParticipants` sessions (not counting one it replaces), SERVICE_UNAVAILABLE when the
   * store cannot be reached or the room stayed busy (locked or changing) too long.
   */
  join(
    room: string,
    session: SessionRecord,
    options: {
      maxParticipants: number;
      /**
       * The room's `watch()` in progress: the store may read the room meanwhile, but writes
       * only once it is done (its failure fails the join), so no event is missed between.
       */
      watching?: Promise<void>;
    },
  ): Promise<JoinResult>;
  /** Removes exactly this session (under the lock) and publishes `left`. */
  leave(room: string, sessionId: string, reason: LeaveReason): Promise<boolean>;
  /** Replaces a session's track list (publish, unpublish, mute) and publishes `tracks`. */
  setTracks(room: string, sessionId: string, tracks: TrackInfo[]): Promise<void>;
  /** Changes a session's name or metadata and publishes `tracks` (the whole record). */
  updateSession(room: string, sessionId: string, change: SessionChange): Promise<void>;
  /** Publishes a chat message to every node of the room (no state). */
  chat(room: string, event: Extract<RoomEvent, { type: 'chat' }>): Promise<void>;
  /** Everyone in the room now. */
  participants(room: string): Promise<SessionRecord[]>;
  /** Every room that has sessions now, cluster-wide. */
  rooms(): Promise<string[]>;
  /** Starts receiving the room's events (a node does this while it has participants there). */
  watch(room: string): Promise<void>;
  unwatch(room: string): Promise<void>;
  /**
   * Removes every session of a dead node from every room it was in, publishing `left`
   * (reason `node-died`) for each. Safe to call from several nodes at once: one does the
   * work (under a lock), the others find nothing to do. Returns how many it removed.
   */
  reapNode(nodeId: string): Promise<number>;
  /**
   * Removes (under the room's lock) the sessions of the room whose node `isOrphan` says is
   * gone, publishing `left` (reason `node-died`) for each; returns how many. For sessions
   * whose node is not in the registry and whose reap was missed (see OrphanReaper).
   */
  reapOrphans(room: string, isOrphan: (nodeId: string) => boolean): Promise<number>;
  /** The rooms watched now (see `watch`). */
  watchedRooms(): string[];
  /**
   * After an outage: makes the store's view of `nodeId`'s sessions match `live` exactly,
   * room by room (adds missing ones, removes ones that ended meanwhile, publishing events).
   */
  reassert(nodeId: string, live: ReadonlyMap<string, readonly SessionRecord[]>): Promise<void>;
  close(): Promise<void>;
}
