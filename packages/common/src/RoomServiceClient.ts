import type { z } from 'zod';
import { isErrorCode, SfuError } from './errors.js';
import { TrackInfo } from './protocol.js';
import {
  type CreateRoomRequest,
  DeliveryResponse,
  ErrorResponse,
  ListParticipantsResponse,
  ListRoomsResponse,
  ParticipantUpdate,
  ROOM_SERVICE_ROUTES,
  RoomInfo,
  RoomParticipant,
  type RoomServiceRoute,
  type SendDataRequest,
  type UpdateParticipantRequest,
} from './roomService.js';

/** How long one call may take before it fails with TIMEOUT. */
const DEFAULT_TIMEOUT_MS = 10_000;

export interface RoomServiceClientOptions {
  /** Any node's (or sfu-directory's) base URL, e.g. `https://sfu.example.com`. */
  url: string;
  /** A token with the grants of the calls made (`roomCreate`, `roomList`, `roomAdmin`). */
  token: string | (() => string | Promise<string>);
  timeoutMs?: number;
}

/**
 * The room service API for Node applications (and anything with `fetch`): typed requests,
 * replies checked against the same schemas the server uses, and errors as `SfuError` with
 * the server's code (NOT_FOUND, PERMISSION_DENIED, TIMEOUT ...).
 */
export class RoomServiceClient {
  readonly #url: string;
  readonly #token: () => string | Promise<string>;
  readonly #timeoutMs: number;

  constructor(options: RoomServiceClientOptions) {
    this.#url = options.url.replace(/\/$/, '');
    const token = options.token;
    this.#token = typeof token === 'function' ? token : () => token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  createRoom(request: CreateRoomRequest): Promise<RoomInfo> {
    return this.#call('createRoom', {}, request, RoomInfo);
  }

  async listRooms(): Promise<RoomInfo[]> {
    return (await this.#call('listRooms', {}, undefined, ListRoomsResponse)).rooms;
  }

  getRoom(room: string): Promise<RoomInfo> {
    return this.#call('getRoom', { room }, undefined, RoomInfo);
  }

  /** Ends every session in the room (reason `room-deleted`); resolves with how many. */
  async deleteRoom(room: string): Promise<number> {
    return (await this.#call('deleteRoom', { room }, undefined, DeliveryResponse)).delivered;
  }

  async listParticipants(room: string): Promise<RoomParticipant[]> {
    return (await this.#call('listParticipants', { room }, undefined, ListParticipantsResponse))
      .participants;
  }

  getParticipant(room: string, identity: string): Promise<RoomParticipant> {
    return this.#call('getParticipant', { room, identity }, undefined, RoomParticipant);
  }

  async removeParticipant(room: string, identity: string): Promise<void> {
    await this.#call('removeParticipant', { room, identity }, undefined, DeliveryResponse);
  }

  /** Changes permissions (effective at once), name or metadata; resolves with the result. */
  updateParticipant(
    room: string,
    identity: string,
    update: UpdateParticipantRequest,
  ): Promise<ParticipantUpdate> {
    return this.#call('updateParticipant', { room, identity }, update, ParticipantUpdate);
  }

  mutePublishedTrack(
    room: string,
    identity: string,
    trackId: string,
    muted: boolean,
  ): Promise<TrackInfo> {
    return this.#call('muteTrack', { room, identity }, { trackId, muted }, TrackInfo);
  }

  /** Sends `payload` to everyone in the room, or to `identities`; resolves with how many. */
  async sendData(room: string, request: SendDataRequest): Promise<number> {
    return (await this.#call('sendData', { room }, request, DeliveryResponse)).delivered;
  }

  async #call<T>(
    name: RoomServiceRoute,
    params: Record<string, string>,
    body: unknown,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const route = ROOM_SERVICE_ROUTES[name];
    const path = route.path.replace(/:(\w+)/g, (_, key: string) =>
      encodeURIComponent(params[key] ?? ''),
    );
    let res: Response;
    try {
      res = await fetch(`${this.#url}${path}`, {
        method: route.method.toUpperCase(),
        headers: {
          authorization: `Bearer ${await this.#token()}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new SfuError(
        timedOut ? 'TIMEOUT' : 'SERVICE_UNAVAILABLE',
        `${name}: ${timedOut ? `no answer within ${this.#timeoutMs} ms` : (error as Error).message} from ${this.#url}`,
        { cause: error },
      );
    }
    const json: unknown = await res.json().catch(() => undefined);
    if (!res.ok) {
      const error = ErrorResponse.safeParse(json);
      if (error.success && isErrorCode(error.data.error.code))
        throw new SfuError(error.data.error.code, error.data.error.message);
      throw new SfuError('INTERNAL', `${name}: HTTP ${res.status} from ${this.#url}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new SfuError('BAD_MESSAGE', `${name}: the server's answer does not match its schema`);
    return parsed.data;
  }
}
