import type { Logger } from '@geosfu/common';
import type { RTCRtpTransceiver } from 'werift';
import type { NodeMetrics } from './metrics.js';
import type { Publication } from './Publication.js';

/**
 * One publication forwarded to one subscriber: a `sendonly` transceiver on the subscriber's
 * PeerConnection. sendonly matters (pitfall 4): with sendrecv werift hands the subscriber's
 * PLIs to the receiver and the sender never sees them.
 */
export class Subscription {
  readonly publication: Publication;
  readonly transceiver: RTCRtpTransceiver;
  #closed = false;
  #onClose: (s: Subscription) => void;
  #counters: ReturnType<NodeMetrics['stream']>;
  #firstPacket: (() => void) | undefined;
  #logger: Logger;
  #unsubscribe: Array<() => void> = [];
  packetsOut = 0;
  bytesOut = 0;

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
    this.#logger = options.logger;
    this.#firstPacket = options.onFirstPacket;
    this.#counters = options.metrics.stream('out', this.publication.kind, 'client');
    const sender = this.transceiver.sender;
    this.#unsubscribe.push(
      sender.onPictureLossIndication.subscribe(() => {
        options.metrics.pli.inc({ direction: 'in' });
        this.publication.requestKeyframe();
      }).unSubscribe,
      sender.onGenericNack.subscribe(() => {
        // werift's sender answers the NACK from its own history; we only count it.
        options.metrics.nack.inc({ direction: 'in' });
      }).unSubscribe,
    );
    this.publication.addSubscription(this);
  }

  get mid(): string | null {
    return this.transceiver.mid;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Hot path: `packet` is a serialized RTP packet that the sender parses into its own copy. */
  send(packet: Buffer): void {
    if (this.#closed || this.publication.muted) return;
    const sender = this.transceiver.sender;
    // Until the answer is applied (no codec) and DTLS is up, werift's sender drops the packet
    // itself: skip it here too, so sfu_packets_total{direction="out"} and the first media
    // out (sfu_join_duration_seconds) count what really left.
    if (!sender.codec || sender.dtlsTransport?.state !== 'connected') return;
    this.packetsOut++;
    this.#counters.packets.inc();
    this.#counters.bytes.inc(packet.length - 12);
    this.bytesOut += packet.length;
    if (this.#firstPacket) {
      const first = this.#firstPacket;
      this.#firstPacket = undefined;
      first();
    }
    sender.sendRtp(packet).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'sendRtp failed');
    });
  }

  /** Detaches from the publication; the owner (Participant) removes the transceiver. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#unsubscribe) off();
    this.publication.removeSubscription(this);
    this.#onClose(this);
  }
}
