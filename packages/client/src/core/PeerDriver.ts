/**
 * What the client core asks of the media side: the browser's RTCPeerConnection (the demo
 * page) or werift (the bot) implement it. The core owns the protocol (when to answer, which
 * candidate goes where); the driver owns the PeerConnections and what they carry.
 */
import type {
  IceCandidate,
  PeerTarget,
  ServerMessageOf,
  SubscribedTrack,
} from '@geosfu/common/protocol';

export interface PeerDriver {
  /** Applies the server's subscriber offer as the subscriber's remote description. */
  applySubscriberOffer(sdp: string, tracks: readonly SubscribedTrack[]): Promise<void>;
  /** Creates and applies the answer to the offer just applied; returns its SDP. */
  answerSubscriber(): Promise<string>;
  /**
   * Adds a remote candidate (null: end of candidates). Called only once that connection has
   * its remote description.
   */
  addRemoteCandidate(target: PeerTarget, candidate: IceCandidate | null): Promise<void>;
  /** Closes every PeerConnection. Idempotent. */
  close(): Promise<void>;
}

/** What a driver gets when the session has joined (its PeerConnections need the ICE servers). */
export interface DriverContext {
  readonly joined: ServerMessageOf<'joined'>;
  /** Hands a candidate our PeerConnection gathered to the core, which trickles it. */
  localCandidate(target: PeerTarget, candidate: IceCandidate): void;
}

export type DriverFactory<D extends PeerDriver> = (context: DriverContext) => D;
