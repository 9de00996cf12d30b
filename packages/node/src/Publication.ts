import {
  InvalidStateError,
  type Logger,
  type SimulcastLayer,
  type TrackInfo,
  type TrackKind,
  type TrackSource,
  TypedEmitter,
} from '@geosfu/common';
import {
  type ForwardedPacket,
  forwardablePacket,
  keyframeDetector,
  parseVp8,
  wireBytes,
} from '@geosfu/media';
import type { Counter } from 'prom-client';
import type { RTCRtpCodecParameters, RtpPacket } from 'werift';
import { Dynacast } from './Dynacast.js';
import type { NodeMetrics, Path } from './metrics.js';
import { LAYER_TICK_MS, LayerState, type PublicationLayer } from './PublicationLayer.js';
import { RelayDemand } from './RelayDemand.js';

export type { PublicationLayer } from './PublicationLayer.js';

/** Where a publication's media comes from, and how to ask it for a keyframe. */
export interface PublicationSource {
  readonly path: Path;
  /**
   * Sends a PLI upstream for one layer (its SSRC). Called at most once per
   * KEYFRAME_REQUEST_GAP_MS per layer.
   */
  requestKeyframe(layer: number): void;
}

/** Anything a publication forwards to: an `OutgoingStream` (a subscriber's, a relay link's). */
export interface PacketSink {
  /** One packet of any layer, built once for every sink; do not modify its buffer. */
  send(packet: ForwardedPacket): void;
  close(): void;
}

export type PublicationEvents = {
  close: [];
  muted: [boolean];
  /** A layer became active or inactive, or was paused or resumed: allocators re-run. */
  layers: [];
  /** Dynacast: the rids the publisher should send changed (the others are paused). */
  dynacast: [active: string[]];
};

/**
 * Keyframe requests closer together than this are merged into one (a trailing request still
 * goes out at the end of the gap). Ten subscribers joining at once cost the publisher one
 * keyframe, not ten, while a lone late joiner waits at most one publisher RTT plus a frame.
 * Each simulcast layer has its own gap (its own SSRC, its own keyframes).
 */
export const KEYFRAME_REQUEST_GAP_MS = 300;

/**
 * How long a simulcast layer nobody needs keeps being sent before dynacast pauses it: a
 * subscriber flapping between layers must not toggle the publisher's encoder (each resume
 * costs a keyframe). Resuming is immediate.
 */
export const DYNACAST_PAUSE_DELAY_MS = 3_000;

let nextTrackNumber = 1;

/**
 * One published track on this node: the fan-out point. Every RTP packet of every layer is
 * read once (layer, keyframe, VP8 descriptor), stripped of its header extensions once, and
 * handed to each sink as one `ForwardedPacket`; the sinks choose what to send.
 */
export class Publication extends TypedEmitter<PublicationEvents> {
  readonly trackId: string;
  readonly kind: TrackKind;
  readonly source: TrackSource;
  readonly participantSid: string;
  readonly identity: string;
  readonly codec: RTCRtpCodecParameters;
  #muted = false;
  #closed = false;
  #sinks = new Set<PacketSink>();
  #origin: PublicationSource;
  readonly #layers: LayerState[];
  readonly #declared: SimulcastLayer[] | undefined;
  readonly #lastKeyframeRequest: number[];
  readonly #trailingRequest: (NodeJS.Timeout | undefined)[];
  readonly #tick: NodeJS.Timeout;
  readonly #dynacast: Dynacast<PacketSink> | RelayDemand<PacketSink> | undefined;
  /** Pauses count in sfu_simulcast_paused_layers (a publisher's, not a relay's). */
  readonly #countPauses: boolean;
  #counters: ReturnType<NodeMetrics['stream']>;
  /** Per-layer packet counters, bound once; empty when not simulcast. */
  readonly #layerPackets: Counter.Internal[];
  #metrics: NodeMetrics;
  #isKeyframe: (payload: Uint8Array) => boolean;
  readonly #video: boolean;
  readonly #vp8: boolean;
  /** Packets and payload bytes received from the source, every layer, for tests and stats. */
  packetsIn = 0;
  bytesIn = 0;
  keyframesIn = 0;

  constructor(options: {
    kind: TrackKind;
    source: TrackSource;
    participantSid: string;
    identity: string;
    codec: RTCRtpCodecParameters;
    origin: PublicationSource;
    metrics: NodeMetrics;
    logger: Logger;
    trackId?: string;
    /** Simulcast: the layers the publish request declared, lowest first. */
    layers?: readonly SimulcastLayer[];
    /**
     * How the sinks' demands add up. `range` (a publisher's dynacast, `Dynacast`): every layer
     * up to the highest needed. `exact` (a relayed track, `RelayDemand`): exactly the layers
     * needed, none before a sink asks; the origin node carries only those on the relay link,
     * and the others read as paused here. The result is the `dynacast` event either way.
     */
    demand?: 'range' | 'exact';
    /** DYNACAST_PAUSE_DELAY_MS unless given (unit tests). */
    dynacastPauseDelayMs?: number;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'publication listener threw'),
    );
    this.trackId =
      options.trackId ??
      `TR_${(nextTrackNumber++).toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    this.kind = options.kind;
    this.source = options.source;
    this.participantSid = options.participantSid;
    this.identity = options.identity;
    this.codec = options.codec;
    this.#origin = options.origin;
    this.#metrics = options.metrics;
    this.#counters = options.metrics.stream('in', options.kind, options.origin.path);
    this.#isKeyframe = keyframeDetector(options.codec.mimeType);
    this.#video = options.kind === 'video';
    this.#vp8 = options.codec.mimeType.toLowerCase() === 'video/vp8';
    const declared = options.layers && options.layers.length > 1 ? [...options.layers] : undefined;
    this.#declared = declared;
    this.#layers = declared
      ? declared.map((l) => new LayerState(l))
      : [new LayerState({ rid: '', width: 0, height: 0, maxBitrate: 0 })];
    this.#layerPackets = declared
      ? declared.map((_, i) => options.metrics.simulcastLayerPackets.labels(String(i)))
      : [];
    this.#lastKeyframeRequest = this.#layers.map(() => 0);
    this.#trailingRequest = this.#layers.map(() => undefined);
    this.#tick = setInterval(() => this.#onTick(), LAYER_TICK_MS);
    this.#tick.unref();
    const exact = options.demand === 'exact';
    this.#countPauses = !exact;
    if (!declared) this.#dynacast = undefined;
    else if (exact) {
      const demand = new RelayDemand<PacketSink>({
        layerCount: declared.length,
        lingerMs: options.dynacastPauseDelayMs ?? DYNACAST_PAUSE_DELAY_MS,
        onChange: (needed) => this.#onDynacast(needed),
      });
      this.#dynacast = demand;
      this.#onDynacast(demand.asked);
    } else {
      this.#dynacast = new Dynacast<PacketSink>({
        layerCount: declared.length,
        pauseDelayMs: options.dynacastPauseDelayMs ?? DYNACAST_PAUSE_DELAY_MS,
        onChange: (top) => this.#onDynacast(declared.map((_, i) => i <= top)),
      });
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get muted(): boolean {
    return this.#muted;
  }

  get subscriptionCount(): number {
    return this.#sinks.size;
  }

  /** Lowest first; exactly one (rid '') when not simulcast. */
  get layers(): readonly PublicationLayer[] {
    return this.#layers;
  }

  get simulcast(): boolean {
    return this.#layers.length > 1;
  }

  /** Per-layer packets and keyframes received, lowest first (tests and stats). */
  layerCounts(): { rid: string; packets: number; keyframes: number }[] {
    return this.#layers.map((l) => ({ rid: l.rid, packets: l.packets, keyframes: l.keyframes }));
  }

  info(): TrackInfo {
    return {
      trackId: this.trackId,
      kind: this.kind,
      source: this.source,
      muted: this.#muted,
      codec: this.codec.mimeType,
      ...(this.#declared ? { layers: this.#declared } : {}),
    };
  }

  setMuted(muted: boolean): void {
    if (this.#muted === muted) return;
    this.#muted = muted;
    this.safeEmit('muted', muted);
  }

  /**
   * Hot path: one packet of layer `layer` (0 when not simulcast) from the source to every
   * sink. It allocates the one `ForwardedPacket` and its buffer, and only when someone listens.
   */
  forward(rtp: RtpPacket, layer = 0): void {
    if (this.#closed) return;
    const state = this.#layers[layer];
    if (!state) return;
    const payload = rtp.payload;
    this.packetsIn++;
    this.bytesIn += payload.length;
    // Padding only (werift strips the padding: nothing left): Chrome probes its uplink with it,
    // on a layer whose encoder sends no frames when bandwidth-limited. It is forwarded (the
    // sequence numbers stay continuous) but is no sign of the layer nor part of its cost.
    const media = payload.length > 0;
    // On the wire, as the subscriber's estimate counts it (the allocator spends one on the other).
    if (media) state.count(wireBytes(payload.length, rtp.header.serializeSize));
    this.#counters.packets.inc();
    this.#counters.bytes.inc(payload.length);
    this.#layerPackets[layer]?.inc();
    const vp8 = this.#vp8 ? parseVp8(payload) : undefined;
    const keyframe =
      this.#video && (this.#vp8 ? (vp8?.keyframe ?? false) : this.#isKeyframe(payload));
    if (keyframe) {
      this.keyframesIn++;
      state.keyframes++;
      this.#metrics.keyframes.inc();
      this.#keyframeArrived(layer);
    }
    if (!state.active && media) {
      // Becoming active is reported at once (an allocator may switch up now); becoming
      // inactive waits for the tick.
      state.active = true;
      this.safeEmit('layers');
    }
    if (this.#sinks.size === 0) return;
    const h = rtp.header;
    const packet: ForwardedPacket = {
      buffer: forwardablePacket(rtp),
      layer,
      ssrc: h.ssrc,
      sequenceNumber: h.sequenceNumber,
      timestamp: h.timestamp,
      marker: h.marker,
      keyframe,
      vp8,
    };
    for (const sink of this.#sinks) sink.send(packet);
  }

  addSubscription(sink: PacketSink): void {
    if (this.#closed) throw new InvalidStateError(`publication ${this.trackId} is closed`);
    this.#sinks.add(sink);
    this.#dynacast?.add(sink);
  }

  /** Detaches a sink; its dynacast demand goes with it. */
  removeSubscription(sink: PacketSink): void {
    this.#sinks.delete(sink);
    this.#dynacast?.remove(sink);
  }

  /**
   * Dynacast: the highest layer `sink` needs (-1: none, e.g. a hidden video), and `also` the
   * layers its stream sends now or switches to. Layers that no sink needs are paused at the
   * publisher after DYNACAST_PAUSE_DELAY_MS (a relayed track: the link stops carrying them
   * after the linger); a sink that never calls this needs every layer (relayed: the lowest).
   * No-op when not simulcast or for an unknown sink.
   */
  setDemand(sink: PacketSink, layer: number, also: readonly number[] = []): void {
    if (this.#closed || !this.#sinks.has(sink)) return;
    const dynacast = this.#dynacast;
    // A publisher sends every layer up to the highest asked for; a relay exactly those asked.
    if (dynacast instanceof RelayDemand) dynacast.set(sink, layer, also);
    else dynacast?.set(sink, Math.max(layer, ...also));
  }

  /**
   * Asks the source for a keyframe of `layer`, or of every layer not paused when undefined,
   * merging requests for one layer that come within the gap.
   */
  requestKeyframe(layer?: number): void {
    if (this.#closed || !this.#video) return;
    if (layer === undefined) {
      for (const [index, state] of this.#layers.entries())
        if (!state.paused) this.#requestKeyframe(index);
      return;
    }
    if (layer >= 0 && layer < this.#layers.length) this.#requestKeyframe(layer);
  }

  #requestKeyframe(layer: number): void {
    if (this.#closed) return;
    const now = Date.now();
    const wait = (this.#lastKeyframeRequest[layer] ?? 0) + KEYFRAME_REQUEST_GAP_MS - now;
    if (wait <= 0) {
      this.#lastKeyframeRequest[layer] = now;
      this.#metrics.pli.inc({ direction: 'out' });
      this.#origin.requestKeyframe(layer);
      return;
    }
    if (this.#trailingRequest[layer]) return;
    this.#trailingRequest[layer] = setTimeout(() => {
      this.#trailingRequest[layer] = undefined;
      this.#requestKeyframe(layer);
    }, wait);
  }

  /**
   * A keyframe of `layer` arrived: a request for it still waiting out the gap is answered
   * (whoever asked switches at the next keyframe it sees), so it is not sent (mediasoup's
   * keyframe request manager does the same). Chrome's VP8 simulcast encoder answers a PLI for
   * any layer with a keyframe on every layer (its q, h and f keyframe counts rose together):
   * when a viewer joined and switched up, the node asked for 8 keyframes of q and h in 1.5 s,
   * each a set of three for the publisher to encode.
   */
  #keyframeArrived(layer: number): void {
    const trailing = this.#trailingRequest[layer];
    if (!trailing) return;
    clearTimeout(trailing);
    this.#trailingRequest[layer] = undefined;
  }

  #onTick(): void {
    let changed = false;
    for (const state of this.#layers) if (state.tick()) changed = true;
    if (changed) this.safeEmit('layers');
  }

  /** `sent`: by layer, whether the source is asked to send it. */
  #onDynacast(sent: readonly boolean[]): void {
    for (const [index, state] of this.#layers.entries()) {
      const paused = !sent[index];
      if (paused === state.paused) continue;
      state.paused = paused;
      if (this.#countPauses) this.#metrics.simulcastPausedLayers.inc(paused ? 1 : -1);
    }
    this.safeEmit('layers');
    this.safeEmit(
      'dynacast',
      this.#layers.filter((l) => !l.paused).map((l) => l.rid),
    );
  }

  /** Closes the publication and, through their own close, every sink. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#tick);
    for (const timer of this.#trailingRequest) clearTimeout(timer);
    this.#dynacast?.close();
    for (const state of this.#layers) {
      if (state.paused && this.#countPauses) this.#metrics.simulcastPausedLayers.dec();
    }
    for (const sink of [...this.#sinks]) sink.close();
    this.#sinks.clear();
    this.safeEmit('close');
    this.removeAllListeners();
  }
}
