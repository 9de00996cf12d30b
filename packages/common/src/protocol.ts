/**
 * The websocket signalling protocol between a client and its node (see docs/PROTOCOL.md).
 *
 * This module is browser-safe (it imports only zod) and is exported separately as
 * `@geosfu/common/protocol` so that the demo page's bundle does not pull in pino or jose.
 * Every frame that arrives from the network is parsed here once; inside, the types are trusted.
 */
import { z } from 'zod';
import { ERROR_CODES } from './errors.js';

export { ERROR_CODES, type ErrorCode, isErrorCode } from './errors.js';

/** Hard limits of the protocol. They are part of the contract, so they are constants, not knobs. */
export const LIMITS = Object.freeze({
  /** Largest websocket frame the server parses; larger ones get MESSAGE_TOO_LARGE. */
  maxMessageBytes: 64 * 1024,
  /** Frames above this are not even buffered: the socket closes with 1009. */
  maxFrameBytes: 1024 * 1024,
  maxSdpLength: 60_000,
  maxChatLength: 4_000,
  maxTracksPerParticipant: 8,
  maxIdLength: 64,
  maxNameLength: 128,
  /** Token bucket per socket: sustained messages per second and burst. */
  messagesPerSecond: 50,
  messageBurst: 100,
  /** Errors a socket may cause within `abuseWindowMs` before it is closed with 1008. */
  maxErrorsPerWindow: 10,
  abuseWindowMs: 10_000,
  /**
   * Largest HTTP request body (JSON, after Content-Encoding is undone) the HTTP API reads;
   * larger ones get PAYLOAD_TOO_LARGE. Every body the API takes is a few hundred bytes.
   */
  maxHttpBodyBytes: 16 * 1024,
  /** Simulcast layers per published video (rids, lowest first). */
  maxSimulcastLayers: 3,
});

/** Websocket close codes the server uses (RFC 6455 section 7.4 and the 4000-4999 range). */
export const CLOSE_CODES = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooBig: 1009,
  internal: 1011,
  /** The same identity joined again elsewhere (page refresh, second tab). */
  replaced: 4001,
  heartbeatTimeout: 4002,
  draining: 4003,
  left: 4004,
});

const id = z.string().min(1).max(LIMITS.maxIdLength);
const sdp = z.string().min(1).max(LIMITS.maxSdpLength);

export const TrackKind = z.enum(['audio', 'video']);
export type TrackKind = z.infer<typeof TrackKind>;

export const TrackSource = z.enum(['camera', 'microphone', 'screen', 'synthetic']);
export type TrackSource = z.infer<typeof TrackSource>;

export const IceCandidate = z.object({
  candidate: z.string().max(1024),
  sdpMid: z.string().max(64).nullish(),
  sdpMLineIndex: z.number().int().min(0).max(64).nullish(),
  usernameFragment: z.string().max(256).nullish(),
});
export type IceCandidate = z.infer<typeof IceCandidate>;

export const IceServer = z.object({
  urls: z.union([z.string(), z.array(z.string())]),
  username: z.string().optional(),
  credential: z.string().optional(),
});
export type IceServer = z.infer<typeof IceServer>;

/**
 * One simulcast layer of a published video, as the publisher encodes it: the rid of its
 * `a=rid` line, the size it is sent at and its bitrate cap (its `RTCRtpEncodingParameters`).
 */
export const SimulcastLayer = z.object({
  rid: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, 'a rid is 1-16 letters, digits, _ or -'),
  width: z.number().int().min(1).max(8192),
  height: z.number().int().min(1).max(8192),
  /** Bits per second. */
  maxBitrate: z.number().int().min(10_000).max(50_000_000),
});
export type SimulcastLayer = z.infer<typeof SimulcastLayer>;

/** A simulcast video's layers, lowest first (the order of its widths). */
export const SimulcastLayers = z
  .array(SimulcastLayer)
  .min(2)
  .max(LIMITS.maxSimulcastLayers)
  .refine((layers) => new Set(layers.map((l) => l.rid)).size === layers.length, 'rids must differ')
  .refine(
    (layers) => layers.every((l, i) => i === 0 || l.width > (layers[i - 1]?.width ?? 0)),
    'layers go lowest first: each wider than the one before',
  );

export const TrackInfo = z.object({
  trackId: id,
  kind: TrackKind,
  source: TrackSource,
  muted: z.boolean(),
  codec: z.string().optional(),
  /** Present for a simulcast video: what a subscriber can get (see `subscription.settings`). */
  layers: z.array(SimulcastLayer).optional(),
});
export type TrackInfo = z.infer<typeof TrackInfo>;

export const ParticipantInfo = z.object({
  sessionId: id,
  identity: z.string().min(1).max(LIMITS.maxNameLength),
  name: z.string().max(LIMITS.maxNameLength),
  joinedAt: z.number(),
  nodeId: z.string(),
  region: z.string(),
  tracks: z.array(TrackInfo),
  /** Application data on the participant, set through the room service API. */
  metadata: z.string().optional(),
});
export type ParticipantInfo = z.infer<typeof ParticipantInfo>;

/** The reasons a participant leaves, visible to everyone in the leave event. */
export const LeaveReason = z.enum([
  'left',
  'disconnected',
  'heartbeat-timeout',
  'peer-connection-failed',
  'replaced',
  'policy-violation',
  'draining',
  'node-died',
  'server-shutdown',
  /** The room service API removed the participant (`DELETE .../participants/:identity`). */
  'removed',
  /** The room service API deleted the room. */
  'room-deleted',
]);
export type LeaveReason = z.infer<typeof LeaveReason>;

// ---------------------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------------------

export const JoinRequest = z.object({
  type: z.literal('join'),
  id: id.optional(),
  /** Checked by the token verifier, so that a missing token gets TOKEN_MISSING, not BAD_MESSAGE. */
  token: z.string().max(4096).optional(),
  /** Subscribe to every track in the room as it is published (default true). */
  autoSubscribe: z.boolean().optional(),
});

export const PublishTrackRequest = z.object({
  /** The m-line of the client's offer that carries this track. */
  mid: z.string().min(1).max(32),
  kind: TrackKind,
  source: TrackSource,
  /**
   * Simulcast: the layers this m-line sends, lowest first; their rids must be the offer's
   * `a=simulcast:send` rids. Video only.
   */
  layers: SimulcastLayers.optional(),
});

/** A publisher offer: the first one creates the publisher PeerConnection, later ones renegotiate. */
export const PublishRequest = z.object({
  type: z.literal('publish'),
  id: id.optional(),
  sdp,
  tracks: z.array(PublishTrackRequest).max(LIMITS.maxTracksPerParticipant),
});

export const UnpublishRequest = z.object({
  type: z.literal('unpublish'),
  id: id.optional(),
  trackId: id,
});

/** The client's answer to a `subscriber.offer`. */
export const SubscriberAnswer = z.object({
  type: z.literal('subscriber.answer'),
  id: id.optional(),
  sdp,
});

export const PeerTarget = z.enum(['publisher', 'subscriber']);
export type PeerTarget = z.infer<typeof PeerTarget>;

export const Trickle = z.object({
  type: z.literal('trickle'),
  target: PeerTarget,
  /** null marks the end of candidates. */
  candidate: IceCandidate.nullable(),
});

export const MuteRequest = z.object({
  type: z.literal('mute'),
  id: id.optional(),
  trackId: id,
  muted: z.boolean(),
});

export const ChatRequest = z.object({
  type: z.literal('chat'),
  id: id.optional(),
  text: z.string().min(1).max(LIMITS.maxChatLength),
});

/**
 * How a subscriber shows one remote video, so that the node sends the layer it needs: the
 * rendered size in device pixels (0 x 0, or `visible: false` for a hidden, off-screen or
 * minimised video, pauses it) and a user's pin: `low` always the lowest layer, `high` the
 * highest the network carries whatever the size, `auto` (the default) by size and network.
 */
export const SubscriptionSettings = z.object({
  type: z.literal('subscription.settings'),
  id: id.optional(),
  trackId: id,
  visible: z.boolean(),
  width: z.number().int().min(0).max(16_384),
  height: z.number().int().min(0).max(16_384),
  pin: z.enum(['auto', 'low', 'high']).optional(),
});
export type SubscriptionPin = NonNullable<z.infer<typeof SubscriptionSettings>['pin']>;

export const LeaveRequest = z.object({ type: z.literal('leave'), id: id.optional() });

export const PingRequest = z.object({ type: z.literal('ping'), ts: z.number() });

export const StatsRequest = z.object({ type: z.literal('stats'), id: id.optional() });

export const ClientMessage = z.discriminatedUnion('type', [
  JoinRequest,
  PublishRequest,
  UnpublishRequest,
  SubscriberAnswer,
  Trickle,
  MuteRequest,
  SubscriptionSettings,
  ChatRequest,
  LeaveRequest,
  PingRequest,
  StatsRequest,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type ClientMessageType = ClientMessage['type'];
export const CLIENT_MESSAGE_TYPES: readonly ClientMessageType[] = ClientMessage.options.map(
  (o) => o.shape.type.value,
);

// ---------------------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------------------

export const Joined = z.object({
  type: z.literal('joined'),
  ref: id.optional(),
  sessionId: id,
  room: z.string(),
  nodeId: z.string(),
  region: z.string(),
  participant: ParticipantInfo,
  participants: z.array(ParticipantInfo),
  iceServers: z.array(IceServer),
  grants: z.object({ canPublish: z.boolean(), canSubscribe: z.boolean() }),
  /** How often the client should send `ping`, and when the server gives up on silence. */
  pingIntervalMs: z.number(),
  pingTimeoutMs: z.number(),
  /**
   * How long the node may hold a `publish` (and a subscriber offer) while earlier connections
   * are being set up (SFU_ADMISSION_TIMEOUT_MS); a client waits at least this long for the
   * answer. Absent from older nodes.
   */
  admissionTimeoutMs: z.number().optional(),
});

export const PublishAnswer = z.object({
  type: z.literal('publish.answer'),
  ref: id.optional(),
  sdp,
  tracks: z.array(z.object({ mid: z.string(), trackId: id })),
});

/** Which remote track each m-line of a subscriber offer carries. */
export const SubscribedTrack = z.object({
  mid: z.string(),
  trackId: id,
  participantSid: id,
  identity: z.string(),
  kind: TrackKind,
});
export type SubscribedTrack = z.infer<typeof SubscribedTrack>;

export const SubscriberOffer = z.object({
  type: z.literal('subscriber.offer'),
  sdp,
  tracks: z.array(SubscribedTrack),
});

export const ParticipantJoined = z.object({
  type: z.literal('participant.joined'),
  participant: ParticipantInfo,
});

export const ParticipantLeft = z.object({
  type: z.literal('participant.left'),
  sessionId: id,
  identity: z.string(),
  reason: LeaveReason,
});

export const TrackPublished = z.object({
  type: z.literal('track.published'),
  participantSid: id,
  track: TrackInfo,
});

export const TrackUnpublished = z.object({
  type: z.literal('track.unpublished'),
  participantSid: id,
  trackId: id,
});

export const TrackMuted = z.object({
  type: z.literal('track.muted'),
  participantSid: id,
  trackId: id,
  muted: z.boolean(),
});

/**
 * Dynacast: the layers of a published simulcast video that some subscriber in the cluster
 * needs. The publisher sends these (`encodings[i].active = true`) and may pause the others;
 * a layer comes back in a later message as soon as someone needs it.
 */
export const PublicationLayers = z.object({
  type: z.literal('publication.layers'),
  trackId: id,
  active: z.array(z.string()),
});

/** The layer of a simulcast video this subscriber now receives; `rid: null` when paused. */
export const SubscriptionLayer = z.object({
  type: z.literal('subscription.layer'),
  trackId: id,
  rid: z.string().nullable(),
  width: z.number().int().min(0),
  height: z.number().int().min(0),
});

export const ChatEvent = z.object({
  type: z.literal('chat'),
  from: z.object({ sessionId: id, identity: z.string(), name: z.string() }),
  text: z.string(),
  ts: z.number(),
});

/**
 * The participant's own permissions changed (room service API): they apply at once. A
 * revoked `canPublish` unpublishes its tracks, and a later `publish` gets PERMISSION_DENIED;
 * a revoked `canSubscribe` ends its subscriptions; without `canChat`, `chat` is refused.
 */
export const PermissionsChanged = z.object({
  type: z.literal('permissions'),
  canPublish: z.boolean(),
  canSubscribe: z.boolean(),
  canChat: z.boolean(),
});

/** A participant's name or metadata changed (room service API). */
export const ParticipantUpdated = z.object({
  type: z.literal('participant.updated'),
  participant: ParticipantInfo,
});

/** A message from the application (room service API `POST /v1/rooms/:room/data`). */
export const DataEvent = z.object({
  type: z.literal('data'),
  payload: z.string(),
  topic: z.string().optional(),
  ts: z.number(),
});

export const Pong = z.object({ type: z.literal('pong'), ts: z.number(), serverTs: z.number() });

export const Ok = z.object({ type: z.literal('ok'), ref: id });

export const ErrorMessage = z.object({
  type: z.literal('error'),
  ref: id.optional(),
  code: z.enum(ERROR_CODES),
  message: z.string(),
});

/** The server ends this session: the client must not reuse the socket. */
export const LeaveEvent = z.object({
  type: z.literal('leave'),
  reason: LeaveReason,
  /** Present when the client should reconnect elsewhere (draining). */
  reconnect: z.object({ url: z.string() }).optional(),
});

export const StreamStats = z.object({
  trackId: z.string(),
  kind: TrackKind,
  direction: z.enum(['inbound', 'outbound']),
  packets: z.number(),
  bytes: z.number(),
  packetsLost: z.number(),
  jitterMs: z.number().nullable(),
  rttMs: z.number().nullable(),
  bitrateKbps: z.number(),
});
export type StreamStats = z.infer<typeof StreamStats>;

export const StatsReport = z.object({
  type: z.literal('stats'),
  ref: id.optional(),
  streams: z.array(StreamStats),
});

export const ServerMessage = z.discriminatedUnion('type', [
  Joined,
  PublishAnswer,
  SubscriberOffer,
  Trickle,
  ParticipantJoined,
  ParticipantLeft,
  TrackPublished,
  TrackUnpublished,
  TrackMuted,
  PublicationLayers,
  SubscriptionLayer,
  ChatEvent,
  PermissionsChanged,
  ParticipantUpdated,
  DataEvent,
  Pong,
  Ok,
  ErrorMessage,
  LeaveEvent,
  StatsReport,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/** Picks the server message of one type: `ServerMessageOf<'joined'>`. */
export type ServerMessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
export type ClientMessageOf<T extends ClientMessage['type']> = Extract<ClientMessage, { type: T }>;

/** Result of parsing one frame: the message, or the code and text of the error to send back. */
export type ParseResult<M> =
  | { ok: true; message: M }
  | {
      ok: false;
      code: 'BAD_MESSAGE' | 'UNKNOWN_TYPE' | 'MESSAGE_TOO_LARGE';
      message: string;
      ref?: string;
    };

function parseFrame<M>(
  raw: string,
  schema: z.ZodType<M>,
  knownTypes: readonly string[],
): ParseResult<M> {
  if (raw.length > LIMITS.maxMessageBytes) {
    return {
      ok: false,
      code: 'MESSAGE_TOO_LARGE',
      message: `message of ${raw.length} bytes is over the ${LIMITS.maxMessageBytes}-byte limit`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    return { ok: false, code: 'BAD_MESSAGE', message: `not JSON: ${(error as Error).message}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, code: 'BAD_MESSAGE', message: 'a message must be a JSON object' };
  }
  const record = json as Record<string, unknown>;
  const ref =
    typeof record.id === 'string' && record.id.length <= LIMITS.maxIdLength ? record.id : undefined;
  const refPart = ref === undefined ? {} : { ref };
  if (typeof record.type !== 'string') {
    return {
      ok: false,
      code: 'BAD_MESSAGE',
      message: 'a message needs a string "type"',
      ...refPart,
    };
  }
  if (!knownTypes.includes(record.type)) {
    return {
      ok: false,
      code: 'UNKNOWN_TYPE',
      message: `unknown message type "${record.type.slice(0, 64)}"; known: ${knownTypes.join(', ')}`,
      ...refPart,
    };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') || '(root)';
    return {
      ok: false,
      code: 'BAD_MESSAGE',
      message: `invalid "${record.type}" message at ${where}: ${issue?.message ?? 'invalid'}`,
      ...refPart,
    };
  }
  return { ok: true, message: result.data };
}

/** Parses a frame from a client. Never throws. */
export function parseClientMessage(raw: string): ParseResult<ClientMessage> {
  return parseFrame(raw, ClientMessage, CLIENT_MESSAGE_TYPES);
}

export const SERVER_MESSAGE_TYPES: readonly ServerMessage['type'][] = ServerMessage.options.map(
  (o) => o.shape.type.value,
);

/** Parses a frame from the server (clients validate too: a bad server must not crash a bot). */
export function parseServerMessage(raw: string): ParseResult<ServerMessage> {
  return parseFrame(raw, ServerMessage, SERVER_MESSAGE_TYPES);
}
