import { type LeaveReason, SfuError } from '@geosfu/common';
import type { RoomCommand, RoomStore } from '@geosfu/registry';
import type { LocalRooms } from './LocalRooms.js';
import type { Participant } from './Participant.js';
import type { Room } from './Room.js';

/**
 * Carries out room service commands on this node's own participants (the API call may have
 * arrived at any node: see RoomCommandBus). Answers what the API returns.
 */
export class RoomCommands {
  readonly #rooms: LocalRooms;
  readonly #store: RoomStore;
  readonly #nodeId: string;
  readonly #region: string;
  readonly #end: (sessionId: string, reason: LeaveReason) => Promise<void>;

  constructor(options: {
    rooms: LocalRooms;
    store: RoomStore;
    nodeId: string;
    region: string;
    /** Ends a local session (the client is told why, everyone sees it leave). */
    end: (sessionId: string, reason: LeaveReason) => Promise<void>;
  }) {
    this.#rooms = options.rooms;
    this.#store = options.store;
    this.#nodeId = options.nodeId;
    this.#region = options.region;
    this.#end = options.end;
  }

  readonly run = async (command: RoomCommand): Promise<unknown> => {
    const room = this.#rooms.get(command.room);
    switch (command.type) {
      case 'remove': {
        const p = this.#participant(room, command.room, command.identity);
        await this.#end(p.sessionId, 'removed');
        return { delivered: 1 };
      }
      case 'mute': {
        const p = this.#participant(room, command.room, command.identity);
        return p.mute(command.trackId, command.muted).info();
      }
      case 'update': {
        const p = this.#participant(room, command.room, command.identity);
        if (command.permissions) {
          p.setPermissions(command.permissions);
          if (command.permissions.canSubscribe && room && p.autoSubscribe) room.subscribeToAll(p);
        }
        if (command.name !== undefined || command.metadata !== undefined) {
          if (command.name !== undefined) p.name = command.name;
          if (command.metadata !== undefined) p.metadata = command.metadata;
          room?.broadcast({
            type: 'participant.updated',
            participant: p.info(this.#nodeId, this.#region),
          });
          // The other nodes hear of it from the store (a `tracks` event with the record).
          await this.#store.updateSession(command.room, p.sessionId, {
            name: p.name,
            ...(p.metadata === undefined ? {} : { metadata: p.metadata }),
          });
        }
        return { name: p.name, metadata: p.metadata ?? '', permissions: p.permissions };
      }
      case 'data': {
        const wanted = command.identities && new Set(command.identities);
        const targets = [...(room?.participants ?? [])].filter(
          (p) => !wanted || wanted.has(p.identity),
        );
        const ts = Date.now();
        for (const p of targets) {
          p.send({
            type: 'data',
            payload: command.payload,
            ...(command.topic ? { topic: command.topic } : {}),
            ts,
          });
        }
        return { delivered: targets.length };
      }
      case 'deleteRoom': {
        const everyone = [...(room?.participants ?? [])];
        await Promise.all(everyone.map((p) => this.#end(p.sessionId, 'room-deleted')));
        return { delivered: everyone.length };
      }
    }
  };

  #participant(room: Room | undefined, name: string, identity: string): Participant {
    const p = room?.sessionOf(identity);
    if (!p) {
      throw new SfuError(
        'NOT_FOUND',
        `"${identity}" is not in room "${name}" on this node (it left, or moved): list the room again`,
      );
    }
    return p;
  }
}
