import type { Logger, SubscriptionPin } from '@geosfu/common';
import { OutgoingStream } from '@geosfu/media';
import type { RTCRtpTransceiver } from 'werift';
import type { NodeMetrics } from './metrics.js';
import type { Publication } from './Publication.js';

/** How the subscriber shows this video (`subscription.settings`). */
export interface SubscriptionSettings {
  readonly visible: boolean;
  /** Rendered size in device pixels; 0 x 0 is hidden. */
  readonly width: number;
  readonly height: number;
  readonly pin: SubscriptionPin;
}

/**
 * One publication forwarded to one subscriber: an `OutgoingStream` on a `sendonly` transceiver
 * of the subscriber's PeerConnection, fed by the publication. sendonly matters (pitfall 4):
 * with sendrecv werift hands the subscriber's PLIs to the receiver and the sender never sees
 * them.
 *
 * Which layer the stream sends is decided by the subscriber's `LayerAllocator` (`retarget`);
 * the stream switches at the target's keyframe and tells this subscription, which counts the
 * switch and reports the layer the subscriber now gets (`onLayer`).
 */
export class Subscription {
  readonly publication: Publication;
  readonly transceiver: RTCRtpTransceiver;
  /** Undefined until the subscriber sent any: then the video counts as visible at full size. */
  settings: SubscriptionSettings | undefined;
  /**
   * The settings changed since the allocator last ran: their target applies at once (a user's
   * choice), not after the once-a-second limit that keeps bandwidth-driven changes calm.
   */
  settingsChanged = false;
  /** performance.now() of the last change of target. */
  retargetedAt = Number.NEGATIVE_INFINITY;
  #closed = false;
  #onClose: (s: Subscription) => void;
  #stream: OutgoingStream;
  #offMuted: () => void;
  #offLayers: () => void;

  constructor(options: {
    publication: Publication;
    transceiver: RTCRtpTransceiver;
    metrics: NodeMetrics;
    logger: Logger;
    onClose: (s: Subscription) => void;
    onFirstPacket?: () => void;
    /** The layer the subscriber receives changed (-1: paused), at the packet that starts it. */
    onLayer?: (s: Subscription, layer: number) => void;
    /** The publication's layers changed (activity, dynacast): the allocator runs again. */
    onLayersChanged?: () => void;
  }) {
    this.publication = options.publication;
    this.transceiver = options.transceiver;
    this.#onClose = options.onClose;
    const { metrics } = options;
    // Bound once: the packet path does no label lookups.
    const counters = metrics.stream('out', this.publication.kind, 'client');
    const switches = {
      up: metrics.layerSwitches.labels('up'),
      down: metrics.layerSwitches.labels('down'),
    };
    const firstPacket = options.onFirstPacket;
    const onLayer = options.onLayer;
    this.#stream = new OutgoingStream({
      sender: this.transceiver.sender,
      clockRate: this.publication.codec.clockRate,
      observer: {
        sent: (bytes) => {
          counters.packets.inc();
          counters.bytes.inc(bytes);
        },
        ...(firstPacket ? { firstPacket } : {}),
        keyframeRequested: (layer) => {
          metrics.pli.inc({ direction: 'in' });
          this.publication.requestKeyframe(layer);
        },
        // werift's sender answers the NACK from its own history; we only count it.
        nack: () => metrics.nack.inc({ direction: 'in' }),
        layerSwitched: (from, to) => {
          // A switch between two layers; starting, pausing and resuming are not switches.
          if (from >= 0 && to >= 0) (to > from ? switches.up : switches.down).inc();
          onLayer?.(this, to);
        },
      },
      // The publication closes the stream when it ends: the subscription ends with it.
      onClose: () => this.close(),
      logger: options.logger,
    });
    this.#stream.paused = this.publication.muted;
    this.#offMuted = this.publication.on('muted', (muted) => {
      this.#stream.paused = muted;
    });
    const onLayersChanged = options.onLayersChanged;
    this.#offLayers = onLayersChanged
      ? this.publication.on('layers', () => onLayersChanged())
      : () => undefined;
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

  /** The layer the subscriber receives now, -1 for none (not started, paused). */
  get currentLayer(): number {
    return this.#stream.currentLayer;
  }

  /** The layer the stream switches to at its next keyframe (= currentLayer once there). */
  get targetLayer(): number {
    return this.#stream.targetLayer;
  }

  /**
   * Sends `layer` from its next keyframe on (-1: pause now), and tells the publication the
   * highest layer this subscriber needs (`demand`, dynacast), which may be a layer paused at
   * the publisher that `layer` stands in for until it resumes.
   */
  retarget(layer: number, demand: number, now: number): void {
    if (this.#closed) return;
    if (layer !== this.#stream.targetLayer) {
      this.#stream.setTargetLayer(layer);
      this.retargetedAt = now;
    }
    // The layers the stream sends now and switches to must keep arriving too: a relay carries
    // only the layers asked for, and a demanded layer its origin does not send (Chrome drops
    // its top layer when CPU-limited) would otherwise leave this video with nothing.
    this.publication.setDemand(this.#stream, demand, [layer, this.#stream.currentLayer]);
  }

  /**
   * Asks for a keyframe of the layer the subscriber gets (or is about to get): not of every
   * layer, which would make the publisher encode keyframes nobody here decodes. Nothing while
   * paused.
   */
  requestKeyframe(): void {
    const layer = this.#stream.targetLayer;
    if (layer >= 0) this.publication.requestKeyframe(layer);
  }

  /** Detaches from the publication; the owner (SubscriberPeer) removes the transceiver. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offMuted();
    this.#offLayers();
    this.publication.removeSubscription(this.#stream);
    this.#stream.close();
    this.#onClose(this);
  }
}
