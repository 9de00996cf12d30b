/**
 * ICE candidate routing for the two PeerConnections of a session (`trickle` carries a target).
 * Remote candidates wait until their connection has a remote description (a PeerConnection
 * rejects them before); local publisher candidates wait until the server knows the publisher
 * (it has no PeerConnection to add them to before the `publish` request), then trickle.
 */
import type { IceCandidate, PeerTarget } from '@geosfu/common/protocol';

export interface TrickleSink {
  /** Sends a local candidate to the server. */
  send(target: PeerTarget, candidate: IceCandidate): void;
  /** Adds a remote candidate (null: end of candidates) to the connection of `target`. */
  add(target: PeerTarget, candidate: IceCandidate | null): Promise<void>;
  /** The connection refused a remote candidate. */
  rejected(target: PeerTarget, error: unknown): void;
}

export class TrickleRouter {
  readonly #sink: TrickleSink;
  readonly #pendingRemote: Record<PeerTarget, (IceCandidate | null)[]> = {
    publisher: [],
    subscriber: [],
  };
  readonly #remoteReady: Record<PeerTarget, boolean> = { publisher: false, subscriber: false };
  /** The publisher's local candidates until the server knows the publisher; then null. */
  #pendingLocal: IceCandidate[] | null = [];

  constructor(sink: TrickleSink) {
    this.#sink = sink;
  }

  /** A candidate from the server. */
  remote(target: PeerTarget, candidate: IceCandidate | null): void {
    if (!this.#remoteReady[target]) {
      this.#pendingRemote[target].push(candidate);
      return;
    }
    this.#sink.add(target, candidate).catch((error: unknown) => this.#sink.rejected(target, error));
  }

  /** The connection of `target` has its remote description: add what waited, in order. */
  async remoteDescriptionSet(target: PeerTarget): Promise<void> {
    this.#remoteReady[target] = true;
    const pending = this.#pendingRemote[target].splice(0);
    for (const candidate of pending) {
      await this.#sink.add(target, candidate).catch((error: unknown) => {
        this.#sink.rejected(target, error);
      });
    }
  }

  /** A candidate our PeerConnection gathered. */
  local(target: PeerTarget, candidate: IceCandidate): void {
    if (target === 'publisher' && this.#pendingLocal) this.#pendingLocal.push(candidate);
    else this.#sink.send(target, candidate);
  }

  /** The `publish` request went out: send the publisher candidates gathered meanwhile. */
  publisherKnown(): void {
    const early = this.#pendingLocal ?? [];
    this.#pendingLocal = null;
    for (const candidate of early) this.#sink.send('publisher', candidate);
  }
}
