import type { TrackKind, TrackSource } from '@geosfu/common';
import type { CodecSpec, ForwardedPacket } from '@geosfu/media';

/** One simulcast layer of a relayed video, as its publisher declared it (0: unknown). */
export interface RelayLayerInfo {
  rid: string;
  width: number;
  height: number;
  maxBitrate: number;
}

/** What a relay link carries for one track: whose track it is and how it is encoded. */
export interface RelayTrackInfo {
  trackId: string;
  participantSid: string;
  identity: string;
  kind: TrackKind;
  source: TrackSource;
  codec: CodecSpec;
  /**
   * A simulcast video's layers, lowest first (two or more): the link carries each on its own
   * m-line, and only while the far node asks for it. Absent: one m-line, always sent.
   */
  layers?: RelayLayerInfo[];
}

/** Where a relay link's packets of one track go: the link routes each by its layer. */
export interface RelaySink {
  send(packet: ForwardedPacket): void;
  close(): void;
}

/** A local track that a relay link sends (the node's Publication seen through the relay). */
export interface RelaySource {
  readonly track: RelayTrackInfo;
  /** Starts handing every forwarded packet (every layer) to `sink`; returns the function that stops it. */
  attach(sink: RelaySink): () => void;
  /** A keyframe of layer `layer` (undefined: of every layer). */
  requestKeyframe(layer?: number): void;
  /**
   * Dynacast: the highest layer the far node behind `sink` needs (-1: none), so that the
   * publisher keeps sending it. Only called for simulcast tracks.
   */
  setDemand(sink: RelaySink, layer: number): void;
}

export type { AnswerBody, CloseBody, LayersBody, OfferBody } from './messages.js';
