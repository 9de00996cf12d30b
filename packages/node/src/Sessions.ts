import { randomUUID } from 'node:crypto';
import {
  type AccessToken,
  type ClientMessageOf,
  type LeaveReason,
  type Logger,
  type NodeConfig,
  type ServerMessage,
  SfuError,
  type StallDetector,
  type TokenService,
} from '@geosfu/common';
import type { RoomSettingsStore, RoomStore, SessionRecord } from '@geosfu/registry';
import type { HandshakeGate } from './HandshakeGate.js';
import type { LocalRooms } from './LocalRooms.js';
import type { NodeMetrics } from './metrics.js';
import { Participant } from './Participant.js';
import type { Room } from './Room.js';
import { iceServersFor } from './turnCredentials.js';

/**
 * The signalling side of one session, whatever carries it: a websocket (`SignalConnection`)
 * or an HTTP resource (`HttpSession`: WHIP and WHEP). Sessions joins and leaves through it.
 */
export interface SessionChannel {
  readonly participant: Participant | undefined;
  readonly room: Room | undefined;
  /** Delivers a server message to the client, if this channel can (HTTP ones drop them). */
  send(message: ServerMessage): void;
  /** Ends the session exactly once, whichever way it ends. */
  end(reason: LeaveReason): Promise<void>;
}

/** How a participant takes part, beyond the join message (the HTTP sessions set these). */
export interface JoinOptions {
  /** WHEP: the client offers and the node answers (no renegotiation). */
  viewer?: boolean;
  /** Receive only the tracks of this identity. */
  watch?: string;
}

export interface JoinResult {
  room: Room;
  participant: Participant;
  reply: ServerMessage;
}

/**
 * The sessions of one node: joins (the store decides the room limit and replacements
 * across the cluster, under the room's lock), leaves and chat. Each joined session is one
 * `SessionChannel` (a websocket or a WHIP/WHEP resource) with its `Participant` in a local
 * `Room`.
 */
export class Sessions {
  readonly #config: NodeConfig;
  readonly #metrics: NodeMetrics;
  readonly #stalls: StallDetector;
  readonly #tokens: TokenService;
  readonly #rooms: LocalRooms;
  readonly #store: RoomStore;
  readonly #settings: RoomSettingsStore;
  readonly #handshakes: HandshakeGate;
  readonly #logger: Logger;
  readonly #accepting: () => boolean;
  readonly #membershipChanged: (room: string) => void;
  readonly #bySession = new Map<string, SessionChannel>();

  constructor(options: {
    config: NodeConfig;
    metrics: NodeMetrics;
    stalls: StallDetector;
    tokens: TokenService;
    rooms: LocalRooms;
    store: RoomStore;
    /** Limits of rooms created through the room service API. */
    settings: RoomSettingsStore;
    handshakes: HandshakeGate;
    logger: Logger;
    /** Whether the node takes joins now (it is active, not draining or closed). */
    accepting: () => boolean;
    /** A session joined or left a room: relay links follow. */
    membershipChanged: (room: string) => void;
  }) {
    this.#config = options.config;
    this.#metrics = options.metrics;
    this.#stalls = options.stalls;
    this.#tokens = options.tokens;
    this.#rooms = options.rooms;
    this.#store = options.store;
    this.#settings = options.settings;
    this.#handshakes = options.handshakes;
    this.#logger = options.logger;
    this.#accepting = options.accepting;
    this.#membershipChanged = options.membershipChanged;
  }

  get size(): number {
    return this.#bySession.size;
  }

  /** Ends the session if it is on this node (a newer session of its identity won elsewhere). */
  end(sessionId: string, reason: LeaveReason): Promise<void> {
    return this.#bySession.get(sessionId)?.end(reason) ?? Promise.resolve();
  }

  async join(
    connection: SessionChannel,
    message: ClientMessageOf<'join'>,
    options: JoinOptions = {},
  ): Promise<JoinResult> {
    const startedAt = performance.now();
    this.#assertAccepting();
    const token = await this.#tokens.verify(message.token);
    for (;;) {
      const room = this.#rooms.roomFor(token.room);
      // Joins of one room run one at a time here; across nodes the store's lock orders them.
      const joined = await room
        .serialize(async () => {
          if (room.closed) return undefined; // retired while we waited: take the new one
          return this.#joinRoom(room, connection, message, token, startedAt, options);
        })
        .catch((error: unknown) => {
          this.#rooms.retireIfUnused(room);
          throw error;
        });
      if (joined) return joined;
    }
  }

  #assertAccepting(): void {
    if (!this.#accepting()) {
      throw new SfuError(
        'NODE_DRAINING',
        'this node is not accepting joins; ask /v1/route for another',
      );
    }
  }

  async #joinRoom(
    room: Room,
    connection: SessionChannel,
    message: ClientMessageOf<'join'>,
    token: AccessToken,
    startedAt: number,
    options: JoinOptions,
  ): Promise<JoinResult> {
    const store = this.#store;
    const config = this.#config;
    if (!store.connected) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        'the cluster state (Redis) is unreachable; try again shortly',
      );
    }
    const previous = room.sessionOf(token.identity);
    if (!previous && this.#bySession.size >= config.capacity) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `this node is full (${config.capacity} participants); ask /v1/route for another`,
      );
    }
    // The room's SUBSCRIBE goes out with the store's read of the room, and the store writes
    // once both are done: one round trip instead of two (see RedisRoomStore.join).
    const watching = this.#rooms.watch(room);
    // Observed here too: a join refused before the store awaits it must not leave an
    // unhandled rejection; the store (or the next join) sees the failure itself.
    watching.catch(() => undefined);
    const sessionId = `PA_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const record: SessionRecord = {
      sessionId,
      identity: token.identity,
      name: token.name,
      nodeId: config.nodeId,
      region: config.region,
      joinedAt: Date.now(),
      tracks: [],
    };
    // The store's lock makes this atomic across the cluster: the room limit, and one session
    // per identity (an older one, here or on another node, is replaced).
    // A room created through the API may have a lower limit than the node's.
    const settings = await this.#settings.get(room.name);
    const result = await store.join(room.name, record, {
      maxParticipants: Math.min(settings?.maxParticipants ?? Infinity, config.maxParticipants),
      watching,
    });
    if (!this.#accepting()) {
      await store.leave(room.name, sessionId, 'draining').catch(() => undefined);
      this.#assertAccepting();
    }
    if (result.replaced && result.replaced.nodeId !== config.nodeId) {
      // Our own store events are not echoed back to us, so apply this one here; the other
      // node gets it from the room's channel and ends that session.
      room.remoteLeft(result.replaced, 'replaced');
    }
    if (result.replaced?.nodeId === config.nodeId) {
      // The page-refresh case on this node: ending the old session removes it from the room
      // synchronously; its later socket close finds it already ended.
      void this.end(result.replaced.sessionId, 'replaced');
    }
    for (const s of result.participants) {
      if (s.nodeId !== config.nodeId && s.sessionId !== sessionId) room.remoteJoined(s);
    }
    const participant = new Participant({
      sessionId,
      identity: token.identity,
      name: token.name,
      grants: token.grants,
      autoSubscribe: message.autoSubscribe ?? true,
      ...options,
      config,
      stalls: this.#stalls,
      metrics: this.#metrics,
      logger: this.#logger.child({ component: 'participant', sessionId, identity: token.identity }),
      send: (m) => connection.send(m),
      handshakes: this.#handshakes,
    });
    participant.once('firstMediaOut', () =>
      this.#metrics.joinDuration.observe((performance.now() - startedAt) / 1000),
    );
    const others = room.infos();
    room.add(participant);
    this.#bySession.set(sessionId, connection);
    this.#membershipChanged(room.name);
    this.#logger.info(
      { room: room.name, sessionId, identity: token.identity },
      'participant joined',
    );
    const reply: ServerMessage = {
      type: 'joined',
      ...(message.id ? { ref: message.id } : {}),
      sessionId,
      room: room.name,
      nodeId: config.nodeId,
      region: config.region,
      participant: participant.info(config.nodeId, config.region),
      participants: others,
      iceServers: iceServersFor(config, token.identity, token.expiresAt),
      grants: { canPublish: token.grants.canPublish, canSubscribe: token.grants.canSubscribe },
      pingIntervalMs: config.pingIntervalMs,
      pingTimeoutMs: config.pingTimeoutMs,
      admissionTimeoutMs: config.admissionTimeoutMs,
    };
    return { room, participant, reply };
  }

  async leave(connection: SessionChannel, reason: LeaveReason): Promise<void> {
    const { participant, room } = connection;
    if (!participant || !room) return;
    if (this.#bySession.get(participant.sessionId) === connection)
      this.#bySession.delete(participant.sessionId);
    const stored = this.#store
      .leave(room.name, participant.sessionId, reason)
      .catch((error: unknown) => {
        // Redis is away: the reassert after the outage removes the session.
        this.#logger.warn({ err: error, room: room.name }, 'could not store the leave');
        return false;
      });
    await room.remove(participant, reason);
    await stored;
  }

  async chat(participant: Participant, room: Room, text: string): Promise<void> {
    if (!participant.permissions.canChat)
      throw new SfuError('PERMISSION_DENIED', 'this participant may not chat in this room');
    const event = {
      type: 'chat' as const,
      origin: this.#config.nodeId,
      from: {
        sessionId: participant.sessionId,
        identity: participant.identity,
        name: participant.name,
      },
      text,
      ts: Date.now(),
    };
    room.broadcast({ type: 'chat', from: event.from, text, ts: event.ts });
    await this.#store.chat(room.name, event);
  }
}
