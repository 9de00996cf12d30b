/**
 * The bodies of the relay signalling messages between nodes (see RelayBus). Every body that
 * arrives is parsed here once, after its envelope was authenticated; every body we send is
 * parsed too, so that a node never sends what its peers would refuse.
 */
import { LIMITS, TrackKind, TrackSource } from '@geosfu/common';
import { MAX_ROOM_LENGTH, NodeRecord } from '@geosfu/registry';
import { z } from 'zod';

/** Largest relay message on the wire (the whole envelope, UTF-8 bytes). */
export const MAX_RELAY_MESSAGE_BYTES = 256 * 1024;
/** Media lines of one relay link: every track of a big room fits. */
export const MAX_RELAY_TRACKS = 512;

/** Same rule as the registry's node ids: they go into channel names. */
export const RelayNodeId = NodeRecord.shape.id;

const id = z.string().min(1).max(LIMITS.maxIdLength);
/** Same bounds as the room store's room names. */
const room = z.string().min(1).max(MAX_ROOM_LENGTH);
/**
 * A relay SDP carries one m-line per track (each with its ICE candidates), so it is far
 * larger than a client's; the message size cap is what bounds it.
 */
const sdp = z.string().min(1).max(MAX_RELAY_MESSAGE_BYTES);

/** The codec of a relayed track, as werift's RTCRtpCodecParameters spells it. */
export const RelayCodec = z.object({
  mimeType: z
    .string()
    .regex(/^(audio|video)\/[A-Za-z0-9.+_-]{1,32}$/, 'a MIME type such as video/VP8'),
  clockRate: z.number().int().min(1).max(1_000_000),
  channels: z.number().int().min(1).max(16).optional(),
  /** The fmtp line, e.g. `profile-level-id=42e01f;packetization-mode=1`. */
  parameters: z.string().max(1024).optional(),
});
export type RelayCodec = z.infer<typeof RelayCodec>;

/** An SDP `a=mid` (RFC 8843: a short token). */
const mid = z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'an SDP mid token');

/**
 * One simulcast layer of a relayed video: what the publisher declared for it (width and
 * height 0 when unknown, maxBitrate 0 when not declared) and the m-line that carries it.
 */
export const RelayLayer = z.object({
  rid: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, 'a rid is 1-16 letters, digits, _ or -'),
  width: z.number().int().min(0).max(8192),
  height: z.number().int().min(0).max(8192),
  maxBitrate: z.number().int().min(0).max(50_000_000),
  mid,
});
export type RelayLayer = z.infer<typeof RelayLayer>;

/**
 * What a relay link carries for one track: which publisher's which track, on which m-line;
 * a simulcast video has one m-line per layer (`layers`, lowest first, `mid` is layer 0's),
 * each sent only while the far node asks for that layer (`layers` messages).
 */
export const RelayTrack = z
  .object({
    /** The track's m-line; for a simulcast video, its layer 0's. */
    mid,
    trackId: id,
    /** Session id of the publisher on the sending node. */
    participantSid: id,
    identity: z.string().min(1).max(LIMITS.maxNameLength),
    kind: TrackKind,
    source: TrackSource,
    codec: RelayCodec,
    layers: z.array(RelayLayer).min(2).max(LIMITS.maxSimulcastLayers).optional(),
  })
  .refine((t) => t.codec.mimeType.startsWith(`${t.kind}/`), {
    message: 'the codec MIME type does not match the track kind',
    path: ['codec', 'mimeType'],
  })
  .refine((t) => t.layers === undefined || (t.kind === 'video' && t.layers[0]?.mid === t.mid), {
    message: 'only a video has layers, and its mid is its layer 0 m-line',
    path: ['layers'],
  });
export type RelayTrack = z.infer<typeof RelayTrack>;

/** `offer`: the node with the publishers opens or renegotiates a link. */
export const OfferBody = z
  .object({
    room,
    linkId: id,
    sdp,
    tracks: z.array(RelayTrack).max(MAX_RELAY_TRACKS),
  })
  .refine((b) => uniqueMids(b.tracks), {
    message: 'two m-lines have the same mid',
    path: ['tracks'],
  });
export type OfferBody = z.infer<typeof OfferBody>;

/** Every m-line of the offer once: a track's own mid, or each of its layers'. */
function uniqueMids(tracks: readonly RelayTrack[]): boolean {
  const mids = tracks.flatMap((t) => (t.layers ? t.layers.map((l) => l.mid) : [t.mid]));
  return new Set(mids).size === mids.length;
}

/** `answer`: the reply to an offer. */
export const AnswerBody = z.object({ room, linkId: id, sdp });
export type AnswerBody = z.infer<typeof AnswerBody>;

/** `close`: either side ends a link; no reply. */
export const CloseBody = z.object({
  room,
  linkId: id,
  /** Short kebab-case reason (`no-subscribers`, `node-draining` ...): fit for a log or label. */
  reason: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'a short kebab-case reason'),
});
export type CloseBody = z.infer<typeof CloseBody>;

/** The layers of one simulcast track that the far node needs, by index, lowest first. */
export const LayerDemand = z.object({
  trackId: id,
  layers: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(LIMITS.maxSimulcastLayers - 1),
    )
    .max(LIMITS.maxSimulcastLayers)
    .refine((l) => l.every((v, i) => i === 0 || v > (l[i - 1] ?? -1)), 'ascending, no repeats'),
});
export type LayerDemand = z.infer<typeof LayerDemand>;

/**
 * `layers`: the receiving node tells the sending node which layers of each simulcast track it
 * needs on link `linkId`. The whole link's demand every time (a track left out needs none):
 * sent on change and repeated periodically, so a lost message heals by itself.
 */
export const LayersBody = z.object({
  room,
  linkId: id,
  tracks: z
    .array(LayerDemand)
    .max(MAX_RELAY_TRACKS)
    .refine((t) => new Set(t.map((d) => d.trackId)).size === t.length, 'a track is named twice'),
});
export type LayersBody = z.infer<typeof LayersBody>;

/**
 * `error`: the reply to a request that failed on the receiving node. `code` is one of
 * ERROR_CODES; an unknown code (a newer node) is read as INTERNAL rather than dropped, so
 * that the requester still learns at once that it failed.
 */
export const ErrorBody = z.object({
  code: z.string().regex(/^[A-Z_]{1,64}$/),
  message: z.string().max(1024),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Request types and what each expects back. */
export interface RelayRequests {
  offer: { body: OfferBody; reply: AnswerBody };
}
export type RelayRequestType = keyof RelayRequests;

/** One-way messages. */
export interface RelayNotices {
  close: CloseBody;
  layers: LayersBody;
}
export type RelayNoticeType = keyof RelayNotices;

export const RELAY_MESSAGE_TYPES = ['offer', 'answer', 'close', 'layers', 'error'] as const;
export type RelayMessageType = (typeof RELAY_MESSAGE_TYPES)[number];

export const BODY_SCHEMAS = {
  offer: OfferBody,
  answer: AnswerBody,
  close: CloseBody,
  layers: LayersBody,
  error: ErrorBody,
} as const satisfies Record<RelayMessageType, z.ZodType>;

/** Types that answer a request and so carry `replyTo`. */
export const REPLY_TYPES: ReadonlySet<RelayMessageType> = new Set(['answer', 'error']);
