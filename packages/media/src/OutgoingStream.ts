import type { Logger } from '@geosfu/common';
import type { RTCRtpSender } from 'werift';
import type { ForwardedPacket } from './ForwardedPacket.js';
import { RTP_HEADER_SIZE } from './rtp.js';

/**
 * What an outgoing stream tells its owner. `sent` runs on the hot path: the owner binds its
 * metric children once (no label lookups per packet) and this calls them; the stream itself
 * knows nothing of Prometheus.
 */
export interface OutgoingStreamObserver {
  /** A packet was handed to the sender; `payloadBytes` is its size without the RTP header. */
  sent(payloadBytes: number): void;
  /** The first packet was handed to the sender (once per stream): media reaches the receiver. */
  firstPacket?(): void;
  /** The receiver asked for a keyframe (a PLI). */
  keyframeRequested(): void;
  /** The receiver reported lost packets (a NACK); werift's sender answers from its history. */
  nack?(): void;
}

export interface OutgoingStreamOptions {
  /** The werift sender of a `sendonly` transceiver (pitfall 4: sendrecv hides the PLIs). */
  sender: RTCRtpSender;
  observer: OutgoingStreamObserver;
  /** Called once when the stream closes, whoever closes it (its source does when it ends). */
  onClose?: () => void;
  logger: Logger;
}

/**
 * One stream out of this node toward one receiver (LiveKit calls it a DownTrack): a
 * subscriber's transceiver, or one m-line of a relay link. It is the sink a publication (or a
 * relay source) forwards to: it drops what cannot leave yet, counts what does, sends it, and
 * turns the receiver's feedback (PLI, NACK) into calls on its observer.
 *
 * Everything between "a packet of the source" and "a packet on the wire" happens in `send`,
 * so that simulcast can choose a layer there and rewrite sequence numbers, timestamps and
 * picture ids with `RtpMunger`/`Vp8Munger` before counting, and our own SRTP egress can
 * replace werift's `sendRtp` in `#write` alone.
 *
 * The stream does not own the sender or its transceiver: its owner created them and removes
 * them (Participant for a subscription, RelayLink for an m-line).
 */
export class OutgoingStream {
  readonly sender: RTCRtpSender;
  /** Packets and bytes (RTP header included) handed to the sender, for stats. */
  packets = 0;
  bytes = 0;
  /** While paused (the publication is muted), packets are dropped before they are counted. */
  paused = false;
  #closed = false;
  #observer: OutgoingStreamObserver;
  #firstPacket: (() => void) | undefined;
  #onClose: (() => void) | undefined;
  #logger: Logger;
  #offs: Array<() => void>;

  constructor(options: OutgoingStreamOptions) {
    this.sender = options.sender;
    this.#observer = options.observer;
    this.#firstPacket = options.observer.firstPacket?.bind(options.observer);
    this.#onClose = options.onClose;
    this.#logger = options.logger;
    const observer = options.observer;
    this.#offs = [
      this.sender.onPictureLossIndication.subscribe(() => observer.keyframeRequested()).unSubscribe,
      this.sender.onGenericNack.subscribe(() => observer.nack?.()).unSubscribe,
    ];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Hot path: a packet of the publication, of any of its layers; the sender parses the buffer
   * into its own copy. Until layer switching lands here, only layer 0 of a simulcast
   * publication is sent (one SSRC per receiver, never the layers mixed).
   */
  send(packet: ForwardedPacket): void {
    if (this.#closed || this.paused || packet.layer !== 0) return;
    const sender = this.sender;
    // Until the answer is applied (no codec) and DTLS is up, werift's sender drops the packet
    // itself: skip it here too, so that the counters (sfu_packets_total{direction="out"}) and
    // the first packet (sfu_join_duration_seconds) say what really left.
    if (!sender.codec || sender.dtlsTransport?.state !== 'connected') return;
    const buffer = packet.buffer;
    this.packets++;
    this.bytes += buffer.length;
    this.#observer.sent(buffer.length - RTP_HEADER_SIZE);
    if (this.#firstPacket) {
      const first = this.#firstPacket;
      this.#firstPacket = undefined;
      first();
    }
    this.#write(buffer);
  }

  #write(packet: Buffer): void {
    this.sender.sendRtp(packet).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'sendRtp failed');
    });
  }

  /** Stops sending and listening to the receiver's feedback; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#offs) off();
    const onClose = this.#onClose;
    this.#onClose = undefined;
    onClose?.();
  }
}
