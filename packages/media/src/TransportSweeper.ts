import type { Logger } from '@geosfu/common';
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';

/**
 * Remembers every DTLS transport (and so every ICE transport and UDP socket) a werift
 * PeerConnection has used, and stops the ones werift dropped without stopping.
 *
 * werift 0.25 only stops the transports that a transceiver or the SCTP transport still
 * references: on `close()` and when a transceiver stops. A remote offer that moves m-lines to
 * a new transport (see publishOffer.ts in packages/node) leaves the old one, socket bound, referenced by
 * nothing. The offer check keeps such offers out; this is the second line, so that whatever
 * shape a negotiation takes, no socket outlives its PeerConnection.
 */
export class TransportSweeper {
  readonly #pc: RTCPeerConnection;
  readonly #logger: Logger;
  readonly #seen = new Set<RTCDtlsTransport>();
  readonly #onTransport: ((transport: RTCDtlsTransport) => void) | undefined;
  #closed = false;

  /** @param onTransport called once for each transport, when a sweep first sees it. */
  constructor(
    pc: RTCPeerConnection,
    logger: Logger,
    onTransport?: (transport: RTCDtlsTransport) => void,
  ) {
    this.#pc = pc;
    this.#logger = logger;
    this.#onTransport = onTransport;
  }

  /**
   * Call after each negotiation step (set a description, with or without success): records
   * the transports in use and stops the ones no live m-line uses any more. Returns how many
   * it stopped.
   */
  sweep(): number {
    if (this.#closed) return 0;
    const live = new Set(this.#pc.dtlsTransports);
    for (const transport of live) {
      if (this.#seen.has(transport)) continue;
      this.#seen.add(transport);
      this.#onTransport?.(transport);
    }
    let stopped = 0;
    for (const transport of this.#seen) {
      if (live.has(transport)) continue;
      this.#seen.delete(transport);
      // Its DTLS state may read closed (a close_notify from the peer) with the ICE transport
      // and its socket still open: stop it in any case, stop() is idempotent.
      if (transport.iceTransport.state !== 'closed') stopped++;
      void this.#stop(transport);
    }
    if (stopped > 0)
      this.#logger.warn({ stopped }, 'stopped DTLS transports that werift left without an owner');
    return stopped;
  }

  /** Closes the PeerConnection and then every transport it ever used. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const transport of this.#pc.dtlsTransports) this.#seen.add(transport);
    this.#closed = true;
    await this.#pc.close().catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'PeerConnection close failed');
    });
    await Promise.allSettled([...this.#seen].map((t) => this.#stop(t)));
    this.#seen.clear();
  }

  #stop(transport: RTCDtlsTransport): Promise<void> {
    return transport.stop().catch((error: unknown) => {
      // A transport that fails to stop has nothing more we can release.
      this.#logger.debug({ err: error }, 'DTLS transport stop failed');
    });
  }
}
