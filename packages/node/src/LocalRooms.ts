import { type LeaveReason, type Logger, SfuError, type TrackInfo } from '@geosfu/common';
import type { RoomEvent, RoomStore, SessionRecord, WebhookInput } from '@geosfu/registry';
import { LatestWrites } from './LatestWrites.js';
import type { Participant } from './Participant.js';
import { Room } from './Room.js';

/** What the rooms tell the rest of the node. */
export interface LocalRoomsHooks {
  /** Who is where, or what they publish, changed in the room: relay links follow. */
  membershipChanged(room: string): void;
  /** The room closed here (nobody of it is left on this node). */
  retired(room: string): Promise<void>;
  /** Another node replaced one of our sessions (the same identity joined there). */
  endSession(sessionId: string, reason: LeaveReason): void;
  /** A fact this node owns, for the webhooks (each is sent once by the cluster: by us). */
  notify(event: WebhookInput): void;
}

/**
 * The rooms of one node, kept in step with the cluster's room store: a room is created on
 * its first join, watched in the store (its events from every node), mirrors its local
 * participants' tracks there, and is retired when nobody of it is left here. After a Redis
 * outage it re-asserts this node's sessions and re-reads what other nodes did meanwhile.
 */
export class LocalRooms {
  readonly #nodeId: string;
  readonly #region: string;
  readonly #store: RoomStore;
  readonly #hooks: LocalRoomsHooks;
  readonly #logger: Logger;
  readonly #rooms = new Map<string, Room>();
  /** Rooms whose store events this node receives. */
  readonly #watched = new Set<string>();
  /**
   * Rooms being re-read after an outage: the sessions an event changed since the read was
   * sent. The read is older than those events, so it must not undo them.
   */
  readonly #rereading = new Map<string, Set<string>>();
  /** Each session's track list, written to the store in order (see LatestWrites). */
  readonly #trackWrites = new LatestWrites<{ room: string; tracks: TrackInfo[] }>(
    async (sessionId, { room, tracks }) => {
      await this.#store.setTracks(room, sessionId, tracks).catch((error: unknown) => {
        // NOT_FOUND: the session left meanwhile (its unpublish events come with the leave).
        if (error instanceof SfuError && error.code === 'NOT_FOUND') return;
        // The outage's reassert writes the current tracks once Redis is back.
        this.#logger.warn({ err: error, room }, 'could not store the tracks');
      });
    },
  );

  constructor(options: {
    nodeId: string;
    region: string;
    store: RoomStore;
    hooks: LocalRoomsHooks;
    logger: Logger;
  }) {
    this.#nodeId = options.nodeId;
    this.#region = options.region;
    this.#store = options.store;
    this.#hooks = options.hooks;
    this.#logger = options.logger;
  }

  get size(): number {
    return this.#rooms.size;
  }

  get all(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  /** The open room of that name, if this node has it. */
  get(name: string): Room | undefined {
    const room = this.#rooms.get(name);
    return room && !room.closed ? room : undefined;
  }

  /** Every local participant, in every room. */
  *participants(): Generator<Participant> {
    for (const room of this.#rooms.values()) yield* room.participants;
  }

  /** The local room, created (and wired to the store) on first use. */
  roomFor(name: string): Room {
    const existing = this.get(name);
    if (existing) return existing;
    const room = new Room({
      name,
      nodeId: this.#nodeId,
      region: this.#region,
      logger: this.#logger.child({ component: 'room' }),
    });
    room.on('tracksChanged', (p) => {
      this.#hooks.membershipChanged(name);
      const tracks = [...p.publications.values()].map((x) => x.info());
      this.#trackWrites.changed(p.sessionId, { room: name, tracks });
    });
    room.on('empty', () => this.retireIfUnused(room));
    const who = (p: Participant) => p.info(this.#nodeId, this.#region);
    room.on('participantJoined', (p) =>
      this.#hooks.notify({ event: 'participant_joined', room: name, participant: who(p) }),
    );
    room.on('participantLeft', (p, reason) =>
      this.#hooks.notify({ event: 'participant_left', room: name, participant: who(p), reason }),
    );
    room.on('trackPublished', (p, publication) =>
      this.#hooks.notify({
        event: 'track_published',
        room: name,
        participant: who(p),
        track: publication.info(),
      }),
    );
    room.on('trackUnpublished', (p, publication) =>
      this.#hooks.notify({
        event: 'track_unpublished',
        room: name,
        participant: who(p),
        track: publication.info(),
      }),
    );
    this.#rooms.set(name, room);
    return room;
  }

  /** Receives the room's events from every node (once per room). */
  async watch(room: Room): Promise<void> {
    if (this.#watched.has(room.name)) return;
    await this.#store.watch(room.name);
    this.#watched.add(room.name);
  }

  /**
   * Closes a room that has no local participant left, and stops watching it: also a room
   * whose every join failed (ROOM_FULL, say), which must not stay watched with a view that
   * only the events after the watch built.
   */
  retireIfUnused(room: Room): void {
    const name = room.name;
    void room.serialize(async () => {
      if (room.size > 0 || room.closed) return;
      room.close();
      if (this.#rooms.get(name) === room) this.#rooms.delete(name);
      await this.#hooks.retired(name);
      if (this.#watched.delete(name)) {
        await this.#store.unwatch(name).catch((error: unknown) => {
          this.#logger.warn({ err: error, room: name }, 'unwatch failed');
        });
      }
    });
  }

  /** Events of watched rooms, from every node (our own were applied already). */
  onStoreEvent(name: string, event: RoomEvent): void {
    if (event.origin === this.#nodeId) return;
    if (event.type !== 'chat') this.#rereading.get(name)?.add(event.session.sessionId);
    const room = this.get(name);
    if (!room) return;
    if (event.type !== 'chat') this.#hooks.membershipChanged(name);
    switch (event.type) {
      case 'joined':
        if (event.session.nodeId !== this.#nodeId) room.remoteJoined(event.session);
        return;
      case 'left':
        if (event.session.nodeId !== this.#nodeId) {
          room.remoteLeft(event.session, event.reason);
        } else if (event.reason === 'node-died') {
          // Another node took us for dead (a partition): we are not, so put our sessions back.
          void this.reassert();
        } else {
          // Replaced by a newer session of the same identity on another node.
          this.#hooks.endSession(event.session.sessionId, event.reason);
        }
        return;
      case 'tracks':
        if (event.session.nodeId !== this.#nodeId) room.remoteTracks(event.session);
        return;
      case 'chat':
        room.broadcast({ type: 'chat', from: event.from, text: event.text, ts: event.ts });
        return;
    }
  }

  /** Makes the store's view of this node's sessions match what is really connected. */
  async reassert(): Promise<void> {
    const live = new Map<string, SessionRecord[]>();
    for (const room of this.#rooms.values()) {
      live.set(
        room.name,
        [...room.participants].map((p) => ({
          sessionId: p.sessionId,
          identity: p.identity,
          name: p.name,
          ...(p.metadata === undefined ? {} : { metadata: p.metadata }),
          nodeId: this.#nodeId,
          region: this.#region,
          joinedAt: p.joinedAt,
          tracks: [...p.publications.values()].map((x) => x.info()),
        })),
      );
    }
    try {
      await this.#store.reassert(this.#nodeId, live);
      // Events of other nodes published while we were cut off are lost: re-read the rooms.
      for (const room of this.#rooms.values()) {
        // A session joining (or leaving) while the read is in flight arrives as an event
        // that the read's answer predates: seen after a Redis failover, when other nodes'
        // joins come right after ours reconnected. The event wins over the read.
        const changed = new Set<string>();
        this.#rereading.set(room.name, changed);
        let stored: SessionRecord[];
        try {
          stored = await this.#store.participants(room.name);
        } finally {
          this.#rereading.delete(room.name);
        }
        const remote = new Map(
          stored
            .filter((x) => x.nodeId !== this.#nodeId && !changed.has(x.sessionId))
            .map((x) => [x.sessionId, x]),
        );
        for (const [sid, record] of room.remoteSessions) {
          if (!remote.has(sid) && !changed.has(sid)) room.remoteLeft(record, 'disconnected');
        }
        for (const record of remote.values()) room.remoteTracks(record);
      }
      this.#logger.info({ rooms: live.size }, 'sessions re-asserted in the room store');
    } catch (error) {
      this.#logger.warn({ err: error }, 'reassert failed; retrying on the next reconnect');
    }
  }

  /** Closes every room (the node's sessions were ended first). */
  close(): void {
    for (const room of this.#rooms.values()) room.close();
    this.#rooms.clear();
  }
}
