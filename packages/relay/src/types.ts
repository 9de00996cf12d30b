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

/** A local track that a relay link sends (the node's Publication seen through the relay). */
export interface RelaySource {
  readonly track: RelayTrackInfo;
  /**
   * Starts handing every forwarded packet (of every layer; the sink picks) to `send`;
   * returns the function that stops it.
   */
  attach(sink: { send(packet: ForwardedPacket): void; close(): void }): () => void;
  requestKeyframe(): void;
}

export type { AnswerBody, CloseBody, OfferBody } from './messages.js';
