import type { TrackKind, TrackSource } from '@geosfu/common';
import type { CodecSpec, ForwardedPacket } from '@geosfu/media';

/** What a relay link carries on one m-line: whose track it is and how it is encoded. */
export interface RelayTrackInfo {
  trackId: string;
  participantSid: string;
  identity: string;
  kind: TrackKind;
  source: TrackSource;
  codec: CodecSpec;
}

/** What a relay source feeds: the link's outgoing stream for one m-line. */
export interface RelaySink {
  send(packet: ForwardedPacket): void;
  /** The layer to carry (the source decides: see relaySource.ts in the node). */
  setTargetLayer(layer: number): void;
  close(): void;
}

/** A local track that a relay link sends (the node's Publication seen through the relay). */
export interface RelaySource {
  readonly track: RelayTrackInfo;
  /**
   * Starts handing every forwarded packet (of every layer; the sink picks) to `send`;
   * returns the function that stops it.
   */
  attach(sink: RelaySink): () => void;
  /** A keyframe of `layer`, or of the layer the link carries when undefined. */
  requestKeyframe(layer?: number): void;
}

export type { AnswerBody, CloseBody, OfferBody } from './messages.js';
