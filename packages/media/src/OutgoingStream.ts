import type { Logger } from '@geosfu/common';
import type { RTCRtpSender } from 'werift';
import type { ForwardedPacket } from './ForwardedPacket.js';
import { RtpMunger } from './RtpMunger.js';
import { RTP_HEADER_SIZE } from './rtp.js';
import { Vp8Munger } from './Vp8Munger.js';

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
  /**
   * A keyframe of `layer` is needed: the receiver asked (a PLI), or the stream waits for one
   * to switch to that layer (asked when the target is set, again every KEYFRAME_RETRY_MS).
   */
  keyframeRequested(layer: number): void;
  /** The receiver reported lost packets (a NACK); werift's sender answers from its history. */
  nack?(): void;
  /**
   * The layer the receiver gets changed, at the packet that starts it: `from` -1 when nothing
   * was sent before (start, resume), `to` -1 when paused.
   */
  layerSwitched?(from: number, to: number): void;
}

export interface OutgoingStreamOptions {
  /** The werift sender of a `sendonly` transceiver (pitfall 4: sendrecv hides the PLIs). */
  sender: RTCRtpSender;
  observer: OutgoingStreamObserver;
  /** The codec's RTP clock, to carry the timestamp across a switch; 90 kHz by default. */
  clockRate?: number;
  /** The layer to send first (default 0, the only one of a stream that is not simulcast). */
  initialLayer?: number;
  /** Called once when the stream closes, whoever closes it (its source does when it ends). */
  onClose?: () => void;
  logger: Logger;
}

/** A switch that waits for a keyframe asks again when none came within this time. */
export const KEYFRAME_RETRY_MS = 1_000;

/**
 * One stream out of this node toward one receiver (LiveKit calls it a DownTrack): a
 * subscriber's transceiver, or one m-line of a relay link. It is the sink a publication (or a
 * relay source) forwards to: it chooses the layer, drops what cannot leave yet, rewrites,
 * counts and sends what does, and turns the receiver's feedback (PLI, NACK) into calls on
 * its observer.
 *
 * Layers: the stream sends one layer of its source (`currentLayer`) and is told which one it
 * should send (`setTargetLayer`, -1: none). When they differ it keeps sending the current one
 * (while it still arrives) and switches at the first packet of a keyframe of the target
 * (any packet for audio), up or down alike, so the decoder never gets a frame it cannot
 * decode. From the switch on, `RtpMunger` makes sequence numbers and timestamps continue the
 * previous layer's (and drops the old layer's late packets, duplicates and packets older than
 * the switching point) and `Vp8Munger` does the same for the VP8 PictureID and TL0PICIDX: the
 * receiver sees one continuous stream on one SSRC (werift's sender writes its own SSRC).
 *
 * Cost on the packet path: a stream that never switched (audio, a single-layer video) maps
 * numbers with a few integer operations and sends the publication's buffer as it is; once a
 * switch moved an origin, each packet is copied once (the buffer is shared by every sink of
 * the publication) and its numbers are written into the copy.
 *
 * The stream does not own the sender or its transceiver: its owner created them and removes
 * them (SubscriberPeer for a subscription, RelayLink for an m-line).
 */
export class OutgoingStream {
  readonly sender: RTCRtpSender;
  /** Packets and bytes (RTP header included) handed to the sender, for stats. */
  packets = 0;
  bytes = 0;
  /** While paused (the publication is muted), packets are dropped before they are counted. */
  paused = false;
  #closed = false;
  readonly #video: boolean;
  #observer: OutgoingStreamObserver;
  #firstPacket: (() => void) | undefined;
  #onClose: (() => void) | undefined;
  #logger: Logger;
  #offs: Array<() => void>;
  readonly #rtp: RtpMunger;
  readonly #vp8 = new Vp8Munger();
  #current = -1;
  #target: number;
  /** When the keyframe the pending switch waits for was last asked for (performance.now()). */
  #askedAt: number;

  constructor(options: OutgoingStreamOptions) {
    this.sender = options.sender;
    this.#video = options.sender.kind === 'video';
    this.#observer = options.observer;
    this.#firstPacket = options.observer.firstPacket?.bind(options.observer);
    this.#onClose = options.onClose;
    this.#logger = options.logger;
    this.#rtp = new RtpMunger(options.clockRate ?? 90_000);
    this.#target = checkLayer(options.initialLayer ?? 0);
    // The owner asks for the first keyframe when the receiver connects; the stream asks
    // again only if none came a while after that.
    this.#askedAt = performance.now();
    const observer = options.observer;
    this.#offs = [
      this.sender.onPictureLossIndication.subscribe(() => {
        // The receiver's decoder needs a keyframe; a pending switch needs one of its target,
        // which repairs the decoder as well.
        const layer = this.#target >= 0 ? this.#target : this.#current;
        if (layer >= 0) observer.keyframeRequested(layer);
      }).unSubscribe,
      this.sender.onGenericNack.subscribe(() => observer.nack?.()).unSubscribe,
    ];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The layer the receiver gets now, -1 for none (not started or paused). */
  get currentLayer(): number {
    return this.#current;
  }

  /** The layer the stream switches to at its next keyframe (= currentLayer when settled). */
  get targetLayer(): number {
    return this.#target;
  }

  /**
   * Which layer to send: the stream switches at that layer's next keyframe and asks for one
   * now; -1 stops sending at once (paused: a hidden video).
   */
  setTargetLayer(layer: number): void {
    checkLayer(layer);
    if (layer === this.#target || this.#closed) return;
    this.#target = layer;
    if (layer === -1) {
      const from = this.#current;
      this.#current = -1;
      if (from !== -1) this.#observer.layerSwitched?.(from, -1);
    } else if (layer !== this.#current) {
      this.#ask(layer, performance.now());
    }
  }

  /** Hot path: one packet of the source; its buffer is shared with other sinks (not modified). */
  send(packet: ForwardedPacket): void {
    if (this.#closed || this.paused) return;
    const sender = this.sender;
    // Until the answer is applied (no codec) and DTLS is up, werift's sender drops the packet
    // itself: skip it here too, so that the counters (sfu_packets_total{direction="out"}) and
    // the first packet (sfu_join_duration_seconds) say what really left, and a switch happens
    // only at a keyframe that really leaves.
    if (!sender.codec || sender.dtlsTransport?.state !== 'connected') return;
    if ((packet.layer !== this.#current || this.#target !== this.#current) && !this.#select(packet))
      return;
    const now = performance.now();
    const rtp = this.#rtp;
    if (!rtp.map(packet.ssrc, packet.sequenceNumber, packet.timestamp, now)) return;
    const vp8 = packet.vp8;
    const vp8Changed = vp8 !== undefined && this.#vp8.map(vp8);
    let buffer = packet.buffer;
    if (vp8Changed || !rtp.identity) {
      buffer = Buffer.allocUnsafe(packet.buffer.length);
      packet.buffer.copy(buffer);
      buffer.writeUInt16BE(rtp.outSequenceNumber, 2);
      buffer.writeUInt32BE(rtp.outTimestamp, 4);
      if (vp8Changed) this.#vp8.write(buffer, RTP_HEADER_SIZE, vp8);
    }
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

  /**
   * The packet of another layer than the current one, or while a switch is pending: switches
   * when it starts the target's keyframe; true when it is to be sent.
   */
  #select(packet: ForwardedPacket): boolean {
    const target = this.#target;
    if (target >= 0 && target !== this.#current) {
      if (packet.layer === target && (packet.keyframe || !this.#video)) {
        this.#switch(packet);
        return true;
      }
      const now = performance.now();
      if (now - this.#askedAt >= KEYFRAME_RETRY_MS) this.#ask(target, now);
    }
    return packet.layer === this.#current;
  }

  #switch(packet: ForwardedPacket): void {
    const from = this.#current;
    this.#rtp.switchTo(packet.ssrc, packet.sequenceNumber, packet.timestamp, performance.now());
    if (packet.vp8) this.#vp8.switchTo(packet.vp8);
    this.#current = packet.layer;
    this.#observer.layerSwitched?.(from, packet.layer);
  }

  #ask(layer: number, now: number): void {
    this.#askedAt = now;
    if (this.#video) this.#observer.keyframeRequested(layer);
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

function checkLayer(layer: number): number {
  if (!Number.isInteger(layer) || layer < -1)
    throw new TypeError(`a layer is an index >= 0, or -1 for none; got ${layer}`);
  return layer;
}
