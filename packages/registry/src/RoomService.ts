import {
  type CreateRoomRequest,
  DeliveryResponse,
  type MuteTrackRequest,
  ParticipantUpdate,
  type RoomInfo,
  type RoomParticipant,
  type RoomRelayLink,
  type RoomSettings,
  type SendDataRequest,
  SfuError,
  TrackInfo,
  type UpdateParticipantRequest,
} from '@geosfu/common';
import type { z } from 'zod';
import type { RoomCommand } from './RoomCommandBus.js';
import type { RoomSettingsStore } from './RoomSettingsStore.js';
import type { RoomStore, SessionRecord } from './RoomStore.js';
import type { WebhookInput } from './WebhookSender.js';

/** How long an API-created room is kept while empty, unless the request says otherwise. */
export const DEFAULT_EMPTY_TIMEOUT_S = 300;

/**
 * The room service API's operations, the same on every node and on sfu-directory. Reads come
 * from the cluster's room store; a change to a participant is a command to the node that
 * holds it (`dispatch`: run here, or signed over Redis), which carries it out and answers.
 */
export class RoomService {
  readonly #store: RoomStore;
  readonly #settings: RoomSettingsStore;
  readonly #dispatch: (nodeId: string, command: RoomCommand) => Promise<unknown>;
  readonly #notify: (event: WebhookInput) => void;
  readonly #maxParticipants: number;
  readonly #createdEmpty: (room: string, settings: RoomSettings) => void;

  constructor(options: {
    store: RoomStore;
    settings: RoomSettingsStore;
    dispatch: (nodeId: string, command: RoomCommand) => Promise<unknown>;
    notify: (event: WebhookInput) => void;
    /** SFU_MAX_PARTICIPANTS: a room never takes more. */
    maxParticipants: number;
    /** A room was created with nobody in it (its empty timeout runs from now). */
    createdEmpty?: (room: string, settings: RoomSettings) => void;
  }) {
    this.#store = options.store;
    this.#settings = options.settings;
    this.#dispatch = options.dispatch;
    this.#notify = options.notify;
    this.#maxParticipants = options.maxParticipants;
    this.#createdEmpty = options.createdEmpty ?? (() => undefined);
  }

  async createRoom(request: CreateRoomRequest): Promise<RoomInfo> {
    const wanted = {
      name: request.name,
      maxParticipants: Math.min(
        request.maxParticipants ?? this.#maxParticipants,
        this.#maxParticipants,
      ),
      emptyTimeout: request.emptyTimeout ?? DEFAULT_EMPTY_TIMEOUT_S,
      metadata: request.metadata ?? '',
      createdAt: Date.now(),
    };
    const participants = await this.#store.participants(request.name);
    const stored = await this.#settings.create(wanted);
    // A room that is already running keeps its settings until it empties.
    if (participants.length > 0) await this.#settings.occupied(request.name);
    if (stored.createdAt === wanted.createdAt && participants.length === 0) {
      this.#notify({ event: 'room_started', room: request.name });
      this.#createdEmpty(request.name, stored);
    }
    return roomInfo(request.name, participants, stored);
  }

  async listRooms(): Promise<RoomInfo[]> {
    const [names, settings] = await Promise.all([this.#store.rooms(), this.#settings.list()]);
    const all = [...new Set([...names, ...settings.map((s) => s.name)])].sort();
    const bySettings = new Map(settings.map((s) => [s.name, s]));
    return Promise.all(
      all.map(async (name) =>
        roomInfo(name, await this.#store.participants(name), bySettings.get(name)),
      ),
    );
  }

  async getRoom(name: string): Promise<RoomInfo> {
    const [participants, settings] = await Promise.all([
      this.#store.participants(name),
      this.#settings.get(name),
    ]);
    if (participants.length === 0 && !settings)
      throw new SfuError('NOT_FOUND', `no room "${name}": create it, or join it`);
    return roomInfo(name, participants, settings);
  }

  /**
   * Forgets the room's settings, then ends every session in it on every node (reason
   * `room-deleted`). A later join creates the room again, as a join-created room.
   */
  async deleteRoom(name: string): Promise<z.infer<typeof DeliveryResponse>> {
    const settings = await this.#settings.get(name);
    const existed = await this.#settings.delete(name);
    const participants = await this.#store.participants(name);
    if (participants.length === 0) {
      if (!existed) throw new SfuError('NOT_FOUND', `no room "${name}"`);
      if (settings && (await this.#settings.claimFinished(name, settings.createdAt)))
        this.#notify({ event: 'room_finished', room: name });
      return { delivered: 0 };
    }
    return this.#onEachNode(participants, { type: 'deleteRoom', room: name });
  }

  async listParticipants(room: string): Promise<RoomParticipant[]> {
    return (await this.#store.participants(room)).map(participantOf);
  }

  async getParticipant(room: string, identity: string): Promise<RoomParticipant> {
    return participantOf(await this.#find(room, identity));
  }

  async removeParticipant(
    room: string,
    identity: string,
  ): Promise<z.infer<typeof DeliveryResponse>> {
    const session = await this.#find(room, identity);
    return DeliveryResponse.parse(
      await this.#dispatch(session.nodeId, { type: 'remove', room, identity }),
    );
  }

  async updateParticipant(
    room: string,
    identity: string,
    request: UpdateParticipantRequest,
  ): Promise<ParticipantUpdate> {
    const session = await this.#find(room, identity);
    return ParticipantUpdate.parse(
      await this.#dispatch(session.nodeId, { type: 'update', room, identity, ...request }),
    );
  }

  async muteTrack(room: string, identity: string, request: MuteTrackRequest): Promise<TrackInfo> {
    const session = await this.#find(room, identity);
    return TrackInfo.parse(
      await this.#dispatch(session.nodeId, { type: 'mute', room, identity, ...request }),
    );
  }

  async sendData(
    room: string,
    request: SendDataRequest,
  ): Promise<z.infer<typeof DeliveryResponse>> {
    const participants = await this.#store.participants(room);
    const wanted = request.identities && new Set(request.identities);
    const targets = participants.filter((p) => !wanted || wanted.has(p.identity));
    if (targets.length === 0)
      throw new SfuError(
        'NOT_FOUND',
        `nobody ${wanted ? 'of those identities ' : ''}is in room "${room}"`,
      );
    return this.#onEachNode(targets, {
      type: 'data',
      room,
      payload: request.payload,
      ...(request.topic ? { topic: request.topic } : {}),
      ...(request.identities ? { identities: request.identities } : {}),
    });
  }

  async #find(room: string, identity: string): Promise<SessionRecord> {
    const session = (await this.#store.participants(room)).find((p) => p.identity === identity);
    if (!session) throw new SfuError('NOT_FOUND', `"${identity}" is not in room "${room}"`);
    return session;
  }

  /** Sends the command to every node holding one of `sessions`; adds up their deliveries. */
  async #onEachNode(
    sessions: readonly SessionRecord[],
    command: RoomCommand,
  ): Promise<z.infer<typeof DeliveryResponse>> {
    const nodes = [...new Set(sessions.map((s) => s.nodeId))];
    const replies = await Promise.all(
      nodes.map(async (node) => DeliveryResponse.parse(await this.#dispatch(node, command))),
    );
    return { delivered: replies.reduce((n, r) => n + r.delivered, 0) };
  }
}

function participantOf(s: SessionRecord): RoomParticipant {
  return {
    sessionId: s.sessionId,
    identity: s.identity,
    name: s.name,
    joinedAt: s.joinedAt,
    nodeId: s.nodeId,
    region: s.region,
    tracks: s.tracks,
    ...(s.metadata === undefined ? {} : { metadata: s.metadata }),
  };
}

/**
 * What the room's media needs between nodes, as the relay monitors build it: a link from
 * each node with a publisher to each other node with a participant in the room.
 */
export function relayLinksOf(sessions: readonly SessionRecord[]): RoomRelayLink[] {
  const nodes = [...new Set(sessions.map((s) => s.nodeId))].sort();
  const publishing = new Set(sessions.filter((s) => s.tracks.length > 0).map((s) => s.nodeId));
  return nodes.flatMap((from) =>
    publishing.has(from)
      ? nodes.filter((to) => to !== from).map((to) => ({ fromNode: from, toNode: to }))
      : [],
  );
}

function roomInfo(
  name: string,
  sessions: readonly SessionRecord[],
  settings: RoomSettings | undefined,
): RoomInfo {
  return {
    name,
    ...(settings ? { settings } : {}),
    participants: sessions.map(participantOf),
    relayLinks: relayLinksOf(sessions),
  };
}
