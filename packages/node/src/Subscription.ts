import type { Logger } from '@geosfu/common';
import { OutgoingStream } from '@geosfu/media';
import type { RTCRtpTransceiver } from 'werift';
import type { NodeMetrics } from './metrics.js';
import type { Publication } from './Publication.js';

/**
 * One publication forwarded to one subscriber: an `OutgoingStream` on a `sendonly` transceiver
 * of the subscriber's PeerConnection, fed by the publication. sendonly matters (pitfall 4):
 * with sendrecv werift hands the subscriber's PLIs to the receiver and the sender never sees
 * them.
 */
export class Subscription {
  readonly publication: Publication;
  readonly transceiver: RTCRtpTransceiver;
  #closed = false;
  #onClose: (s: Subscription) => void;
  #stream: OutgoingStream;
  #offMuted: () => void;

  constructor(options: {
    publication: Publication;
    transceiver: RTCRtpTransceiver;
    metrics: NodeMetrics;
    logger: Logger;
    onClose: (s: Subscription) => void;
    onFirstPacket?: () => void;
  }) {
    this.publication = options.publication;
    this.transceiver = options.transceiver;
    this.#onClose = options.onClose;
    const { metrics } = options;
    // Bound once: the packet path does no label lookups.
    const counters = metrics.stream('out', this.publication.kind, 'client');
    const firstPacket = options.onFirstPacket;
    this.#stream = new OutgoingStream({
      sender: this.transceiver.sender,
      observer: {
        sent: (bytes) => {
          counters.packets.inc();
          counters.bytes.inc(bytes);
        },
        ...(firstPacket ? { firstPacket } : {}),
        keyframeRequested: () => {
          metrics.pli.inc({ direction: 'in' });
          // The stream sends layer 0 until it switches layers itself.
          this.publication.requestKeyframe(0);
        },
        // werift's sender answers the NACK from its own history; we only count it.
        nack: () => metrics.nack.inc({ direction: 'in' }),
      },
      // The publication closes the stream when it ends: the subscription ends with it.
      onClose: () => this.close(),
      logger: options.logger,
    });
    this.#stream.paused = this.publication.muted;
    this.#offMuted = this.publication.on('muted', (muted) => {
      this.#stream.paused = muted;
    });
    this.publication.addSubscription(this.#stream);
  }

  get mid(): string | null {
    return this.transceiver.mid;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Packets and bytes (RTP header included) sent to the subscriber, for stats. */
  get packetsOut(): number {
    return this.#stream.packets;
  }

  get bytesOut(): number {
    return this.#stream.bytes;
  }

  /** Detaches from the publication; the owner (Participant) removes the transceiver. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offMuted();
    this.publication.removeSubscription(this.#stream);
    this.#stream.close();
    this.#onClose(this);
  }
}
