import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import { LeaveReason, LIMITS, TrackInfo } from './protocol.js';

// The room service API (HTTP/JSON on every node and on sfu-directory) and the webhook
// events, defined once: the server validates requests with these schemas, the
// RoomServiceClient validates replies with them, and the OpenAPI document is generated from
// them (openapi.ts).

/** Room names as tokens carry them. */
export const RoomName = z.string().min(1).max(128);
/** Characters of a room's metadata at most. */
export const MAX_ROOM_METADATA_LENGTH = 4096;
/** Application data on a room: opaque to the cluster. */
export const RoomMetadata = z.string().max(MAX_ROOM_METADATA_LENGTH);

export const CreateRoomRequest = z.strictObject({
  name: RoomName,
  /** At most this many participants (never more than the node's SFU_MAX_PARTICIPANTS). */
  maxParticipants: z.number().int().min(1).max(10_000).optional(),
  /** Seconds the room is kept while nobody is in it; default 300. */
  emptyTimeout: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional(),
  metadata: RoomMetadata.optional(),
});
export type CreateRoomRequest = z.infer<typeof CreateRoomRequest>;

/** A room created through the API; rooms created by a join have none. */
export const RoomSettings = z.object({
  name: RoomName,
  maxParticipants: z.number().int().min(1),
  emptyTimeout: z.number().int().min(1),
  metadata: z.string(),
  /** Epoch ms. */
  createdAt: z.number(),
});
export type RoomSettings = z.infer<typeof RoomSettings>;

export const RoomParticipant = z.object({
  sessionId: z.string(),
  identity: z.string(),
  name: z.string(),
  /** Epoch ms. */
  joinedAt: z.number(),
  /** The node the participant is connected to, and its region. */
  nodeId: z.string(),
  region: z.string(),
  tracks: z.array(TrackInfo),
  metadata: z.string().optional(),
});
export type RoomParticipant = z.infer<typeof RoomParticipant>;

/** A relay link of the room: media of `fromNode`'s publishers forwarded to `toNode`. */
export const RoomRelayLink = z.object({ fromNode: z.string(), toNode: z.string() });
export type RoomRelayLink = z.infer<typeof RoomRelayLink>;

export const RoomInfo = z.object({
  name: RoomName,
  /** Present for a room created through the API. */
  settings: RoomSettings.optional(),
  participants: z.array(RoomParticipant),
  /**
   * The links that carry the room's media between nodes: one from each node with
   * publishers to each other node with participants in the room.
   */
  relayLinks: z.array(RoomRelayLink),
});
export type RoomInfo = z.infer<typeof RoomInfo>;

export const ListRoomsResponse = z.object({ rooms: z.array(RoomInfo) });
export type ListRoomsResponse = z.infer<typeof ListRoomsResponse>;

export const ListParticipantsResponse = z.object({ participants: z.array(RoomParticipant) });
export type ListParticipantsResponse = z.infer<typeof ListParticipantsResponse>;

export const MuteTrackRequest = z.strictObject({ trackId: z.string().min(1), muted: z.boolean() });
export type MuteTrackRequest = z.infer<typeof MuteTrackRequest>;

export const ParticipantPermissions = z.strictObject({
  canPublish: z.boolean().optional(),
  canSubscribe: z.boolean().optional(),
  canChat: z.boolean().optional(),
});
export type ParticipantPermissions = z.infer<typeof ParticipantPermissions>;

/** Characters of a participant's metadata at most. */
export const MAX_PARTICIPANT_METADATA_LENGTH = 4096;

export const UpdateParticipantRequest = z
  .strictObject({
    permissions: ParticipantPermissions.optional(),
    name: z.string().max(128).optional(),
    metadata: z.string().max(MAX_PARTICIPANT_METADATA_LENGTH).optional(),
  })
  .refine((r) => r.permissions || r.name !== undefined || r.metadata !== undefined, {
    message: 'give permissions, name or metadata',
  });
export type UpdateParticipantRequest = z.infer<typeof UpdateParticipantRequest>;

export const SendDataRequest = z.strictObject({
  payload: z.string().max(LIMITS.maxChatLength),
  topic: z.string().min(1).max(64).optional(),
  /** Only these identities; everyone in the room when left out. */
  identities: z.array(z.string().min(1)).min(1).max(100).optional(),
});
export type SendDataRequest = z.infer<typeof SendDataRequest>;

/** How many participants a call on several nodes reached. */
export const DeliveryResponse = z.object({ delivered: z.number().int().min(0) });
export type DeliveryResponse = z.infer<typeof DeliveryResponse>;

export const ErrorResponse = z.object({
  error: z.object({ code: z.enum(ERROR_CODES), message: z.string() }),
});

// ---------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------

export const WEBHOOK_EVENTS = [
  'room_started',
  'room_finished',
  'participant_joined',
  'participant_left',
  'track_published',
  'track_unpublished',
  'relay_opened',
  'relay_closed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/**
 * One webhook delivery's body. Each event is sent once by the cluster (by the node that
 * owns the fact), with an `id` for the receiver to spot a retry it already processed.
 */
export const WebhookEvent = z.object({
  id: z.string(),
  event: z.enum(WEBHOOK_EVENTS),
  /** Epoch ms when it happened. */
  createdAt: z.number(),
  room: RoomName,
  /** The node that sent it. */
  nodeId: z.string(),
  participant: RoomParticipant.optional(),
  reason: LeaveReason.optional(),
  track: TrackInfo.optional(),
  relay: RoomRelayLink.optional(),
});
export type WebhookEvent = z.infer<typeof WebhookEvent>;

/** The header with `t=<epoch ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-geosfu-signature';

/** A participant's permissions as they are now. */
export const ParticipantPermissionsState = z.object({
  canPublish: z.boolean(),
  canSubscribe: z.boolean(),
  canChat: z.boolean(),
});
export type ParticipantPermissionsState = z.infer<typeof ParticipantPermissionsState>;

/** A participant after an update. */
export const ParticipantUpdate = z.object({
  name: z.string(),
  metadata: z.string(),
  permissions: ParticipantPermissionsState,
});
export type ParticipantUpdate = z.infer<typeof ParticipantUpdate>;

/** The grant a room service call needs (see token.ts). */
export type RoomServiceGrant = 'roomCreate' | 'roomList' | 'roomAdmin';

/**
 * Every route of the room service API: the server mounts these, the client calls them and
 * the OpenAPI document describes them, from this one table.
 */
export const ROOM_SERVICE_ROUTES = {
  createRoom: {
    method: 'post',
    path: '/v1/rooms',
    grant: 'roomCreate',
    status: 201,
    summary: 'Create a room with its limits and metadata (or return the existing one)',
  },
  listRooms: {
    method: 'get',
    path: '/v1/rooms',
    grant: 'roomList',
    status: 200,
    summary: 'Every room of the cluster, with who is in it and where',
  },
  getRoom: {
    method: 'get',
    path: '/v1/rooms/:room',
    grant: 'roomList',
    status: 200,
    summary: 'One room: participants with their node and region, tracks, relay links',
  },
  deleteRoom: {
    method: 'delete',
    path: '/v1/rooms/:room',
    grant: 'roomCreate',
    status: 200,
    summary: 'Delete a room: everyone on every node leaves (reason room-deleted)',
  },
  listParticipants: {
    method: 'get',
    path: '/v1/rooms/:room/participants',
    grant: 'roomAdmin',
    status: 200,
    summary: 'The participants of a room, cluster-wide',
  },
  getParticipant: {
    method: 'get',
    path: '/v1/rooms/:room/participants/:identity',
    grant: 'roomAdmin',
    status: 200,
    summary: 'One participant',
  },
  removeParticipant: {
    method: 'delete',
    path: '/v1/rooms/:room/participants/:identity',
    grant: 'roomAdmin',
    status: 200,
    summary: 'Remove a participant (reason removed)',
  },
  updateParticipant: {
    method: 'patch',
    path: '/v1/rooms/:room/participants/:identity',
    grant: 'roomAdmin',
    status: 200,
    summary: "Change a participant's permissions (at once), name or metadata",
  },
  muteTrack: {
    method: 'post',
    path: '/v1/rooms/:room/participants/:identity/mute',
    grant: 'roomAdmin',
    status: 200,
    summary: 'Mute or unmute a published track: its media stops reaching subscribers',
  },
  sendData: {
    method: 'post',
    path: '/v1/rooms/:room/data',
    grant: 'roomAdmin',
    status: 200,
    summary: 'Send a message to the room, or to chosen identities',
  },
} as const satisfies Record<
  string,
  {
    method: 'get' | 'post' | 'patch' | 'delete';
    path: string;
    grant: RoomServiceGrant;
    status: number;
    summary: string;
  }
>;
export type RoomServiceRoute = keyof typeof ROOM_SERVICE_ROUTES;
