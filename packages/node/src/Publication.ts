import {
  InvalidStateError,
  type Logger,
  type TrackInfo,
  type TrackKind,
  type TrackSource,
  TypedEmitter,
} from '@geosfu/common';
import { forwardablePacket, keyframeDetector } from '@geosfu/media';
import type { RTCRtpCodecParameters, RtpPacket } from 'werift';
import type { NodeMetrics, Path } from './metrics.js';

/** Where a publication's media comes from, and how to ask it for a keyframe. */
export interface PublicationSource {
  readonly path: Path;
  /** Sends a PLI upstream. Called at most once per KEYFRAME_REQUEST_GAP_MS. */
  requestKeyframe(): void;
}

/** Anything a publication forwards to: an `OutgoingStream` (a subscriber's, a relay link's). */
export interface PacketSink {
  /** `packet` is a serialized RTP packet without header extensions; do not modify it. */
  send(packet: Buffer): void;
  close(): void;
}

export type PublicationEvents = {
  close: [];
  muted: [boolean];
};

/**
 * Keyframe requests closer together than this are merged into one (a trailing request still
 * goes out at the end of the gap). Ten subscribers joining at once cost the publisher one
 * keyframe, not ten, while a lone late joiner waits at most one publisher RTT plus a frame.
 */
export const KEYFRAME_REQUEST_GAP_MS = 300;

let nextTrackNumber = 1;

/**
 * One published track on this node: the fan-out point. Every RTP packet from the source is
 * stripped of its header extensions once and handed to each subscription.
 */
export class Publication extends TypedEmitter<PublicationEvents> {
  readonly trackId: string;
  readonly kind: TrackKind;
  readonly source: TrackSource;
  readonly participantSid: string;
  readonly identity: string;
  readonly codec: RTCRtpCodecParameters;
  #muted = false;
  #closed = false;
  #subscriptions = new Set<PacketSink>();
  #origin: PublicationSource;
  #lastKeyframeRequest = 0;
  #trailingRequest: NodeJS.Timeout | undefined;
  #counters: ReturnType<NodeMetrics['stream']>;
  #metrics: NodeMetrics;
  #isKeyframe: (payload: Uint8Array) => boolean;
  /** Packets received from the source, for tests and stats. */
  packetsIn = 0;
  keyframesIn = 0;

  constructor(options: {
    kind: TrackKind;
    source: TrackSource;
    participantSid: string;
    identity: string;
    codec: RTCRtpCodecParameters;
    origin: PublicationSource;
    metrics: NodeMetrics;
    logger: Logger;
    trackId?: string;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'publication listener threw'),
    );
    this.trackId =
      options.trackId ??
      `TR_${(nextTrackNumber++).toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    this.kind = options.kind;
    this.source = options.source;
    this.participantSid = options.participantSid;
    this.identity = options.identity;
    this.codec = options.codec;
    this.#origin = options.origin;
    this.#metrics = options.metrics;
    this.#counters = options.metrics.stream('in', options.kind, options.origin.path);
    this.#isKeyframe = keyframeDetector(options.codec.mimeType);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get muted(): boolean {
    return this.#muted;
  }

  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  info(): TrackInfo {
    return {
      trackId: this.trackId,
      kind: this.kind,
      source: this.source,
      muted: this.#muted,
      codec: this.codec.mimeType,
    };
  }

  setMuted(muted: boolean): void {
    if (this.#muted === muted) return;
    this.#muted = muted;
    this.safeEmit('muted', muted);
  }

  /** Hot path: one packet from the source to every subscriber. */
  forward(rtp: RtpPacket): void {
    if (this.#closed) return;
    this.packetsIn++;
    this.#counters.packets.inc();
    this.#counters.bytes.inc(rtp.payload.length);
    if (this.kind === 'video' && this.#isKeyframe(rtp.payload)) {
      this.keyframesIn++;
      this.#metrics.keyframes.inc();
    }
    if (this.#subscriptions.size === 0) return;
    const packet = forwardablePacket(rtp);
    for (const subscription of this.#subscriptions) subscription.send(packet);
  }

  addSubscription(subscription: PacketSink): void {
    if (this.#closed) throw new InvalidStateError(`publication ${this.trackId} is closed`);
    this.#subscriptions.add(subscription);
  }

  removeSubscription(subscription: PacketSink): void {
    this.#subscriptions.delete(subscription);
  }

  /** Asks the source for a keyframe, merging requests that come within the gap. */
  requestKeyframe(): void {
    if (this.#closed || this.kind !== 'video') return;
    const now = Date.now();
    const wait = this.#lastKeyframeRequest + KEYFRAME_REQUEST_GAP_MS - now;
    if (wait <= 0) {
      this.#lastKeyframeRequest = now;
      this.#metrics.pli.inc({ direction: 'out' });
      this.#origin.requestKeyframe();
      return;
    }
    if (this.#trailingRequest) return;
    this.#trailingRequest = setTimeout(() => {
      this.#trailingRequest = undefined;
      this.requestKeyframe();
    }, wait);
  }

  /** Closes the publication and, through their own close, every subscription to it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#trailingRequest);
    for (const subscription of [...this.#subscriptions]) subscription.close();
    this.#subscriptions.clear();
    this.safeEmit('close');
    this.removeAllListeners();
  }
}
