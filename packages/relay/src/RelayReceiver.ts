import { type Logger, SfuError, TypedEmitter } from '@geosfu/common';
import {
  fixNackWraparound,
  PeerLiveness,
  pliPacket,
  preferPassiveDtls,
  udpReceiveBufferHook,
} from '@geosfu/media';
import {
  type MediaStreamTrack,
  type RTCDtlsTransport,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpTransceiver,
  type RtpPacket,
} from 'werift';
import type { AnswerBody, LayersBody, OfferBody } from './messages.js';
import type { RelayTrackInfo } from './types.js';

/**
 * A relayed track as the receiving node sees it: packets in (of each simulcast layer the
 * node asked for), keyframe requests and layer demand out.
 */
export interface RelayedTrack {
  readonly info: RelayTrackInfo;
  /**
   * Hands every received RTP packet to `listener` with its layer index (0 when not
   * simulcast); returns the function that stops it.
   */
  onPacket(listener: (rtp: RtpPacket, layer: number) => void): () => void;
  /**
   * Sends a PLI back over the link for layer `layer`'s m-line (undefined: every m-line) to
   * the sending node, which asks the publisher.
   */
  requestKeyframe(layer?: number): void;
  /**
   * Simulcast: the layers this node's subscribers need (indexes, any order); the sending node
   * sends those and no others. Ignored for a track that is not simulcast (always sent).
   */
  setDemand(layers: readonly number[]): void;
}

/**
 * How often the whole link's layer demand is sent again although nothing changed: a
 * `layers` message lost (Redis blinked, the sender restarted its link) heals within this.
 */
export const LAYERS_REFRESH_MS = 5_000;

/** How soon a keyframe request that could not go out yet is tried again. */
const PLI_RETRY_MS = 100;

/**
 * Why a receiver closed. This side judged the link dead: `peer-timeout` (silent, or never
 * connected, for the peer timeout: PeerLiveness) or `peer-connection-failed`; or it was told
 * to: `closed-by-peer` (the sender closed it), `replaced` (a newer link from the same node),
 * `node-down` (the sending node left the registry), `room-closed`, `node-shutdown`.
 */
export type RelayReceiverCloseReason =
  | 'peer-timeout'
  | 'peer-connection-failed'
  | 'closed-by-peer'
  | 'replaced'
  | 'node-down'
  | 'room-closed'
  | 'node-shutdown';

export type RelayReceiverEvents = {
  track: [RelayedTrack];
  trackEnded: [trackId: string];
  closed: [reason: RelayReceiverCloseReason];
};

/**
 * The receiving side of a relay link: answers the sending node's offers on its own
 * PeerConnection and turns each m-line into a `RelayedTrack` that the node publishes
 * locally like any other track. It never offers (the sender owns the link).
 */
export class RelayReceiver extends TypedEmitter<RelayReceiverEvents> {
  readonly room: string;
  readonly remoteNode: string;
  readonly linkId: string;
  #pc: RTCPeerConnection;
  readonly #sizeSockets: ((transport: RTCDtlsTransport) => void) | undefined;
  #logger: Logger;
  /** Each track's m-lines, lowest layer first (one when not simulcast). */
  #tracks = new Map<string, { info: RelayTrackInfo; transceivers: RTCRtpTransceiver[] }>();
  /** Layers this node needs, by simulcast track; what every `layers` message says. */
  #demand = new Map<string, number[]>();
  #notify: (body: LayersBody) => Promise<void>;
  #layersScheduled = false;
  #layersRefresh: NodeJS.Timeout | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #pendingPli = new Set<RTCRtpTransceiver>();
  #pliRetry: NodeJS.Timeout | undefined;
  #liveness: PeerLiveness;

  constructor(options: {
    room: string;
    remoteNode: string;
    linkId: string;
    peerConfig: RTCPeerConnectionConfig;
    /** SO_RCVBUF of the link's UDP socket, bytes (0 or absent: the system's default). */
    udpReceiveBuffer?: number;
    /** SFU_PEER_TIMEOUT_MS: silence (no RTP, no RTCP) after which the link is dead. */
    peerTimeoutMs: number;
    /** The clock the silence is measured on (the node's StallDetector). */
    clock?: { now(): number };
    /** Sends a `layers` message to the sending node (the relay bus); failures are retried by the refresh. */
    sendLayers: (body: LayersBody) => Promise<void>;
    logger: Logger;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'relay receiver listener threw'),
    );
    this.room = options.room;
    this.remoteNode = options.remoteNode;
    this.linkId = options.linkId;
    this.#logger = options.logger.child({
      component: 'relay-receiver',
      room: this.room,
      from: this.remoteNode,
      linkId: this.linkId,
    });
    this.#notify = options.sendLayers;
    this.#pc = new RTCPeerConnection(options.peerConfig);
    this.#sizeSockets = udpReceiveBufferHook(options.udpReceiveBuffer ?? 0, this.#logger);
    this.#pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') {
        // The sending node may have rebuilt its side meanwhile: say again what we need.
        this.#scheduleLayers();
        const pending = [...this.#pendingPli];
        this.#pendingPli.clear();
        for (const t of pending) this.#sendPli(t);
      }
      if (state === 'failed' || state === 'closed') void this.close('peer-connection-failed');
    });
    // This side is ICE-lite: werift never fails the PC when the sending node dies or stalls,
    // so the link would outlive its source (and hold its UDP socket) without this watch.
    this.#liveness = new PeerLiveness(this.#pc, {
      timeoutMs: options.peerTimeoutMs,
      ...(options.clock ? { clock: options.clock } : {}),
      onDead: (why) => {
        this.#logger.warn({ why }, 'relay link is dead');
        void this.close('peer-timeout');
      },
    });
  }

  get peerConnection(): RTCPeerConnection {
    return this.#pc;
  }

  get trackIds(): string[] {
    return [...this.#tracks.keys()];
  }

  /** Applies an offer (the first or a renegotiation) and returns the answer. Offers run in order. */
  handleOffer(body: OfferBody): Promise<AnswerBody> {
    const run = this.#queue.then(() => this.#handleOffer(body));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #handleOffer(body: OfferBody): Promise<AnswerBody> {
    if (this.#closed) throw new SfuError('CLOSED', `relay link ${this.linkId} is closed`);
    try {
      await this.#pc.setRemoteDescription({ type: 'offer', sdp: body.sdp });
    } catch (error) {
      throw new SfuError('INVALID_SDP', `relay offer rejected: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const answer = await this.#pc.createAnswer();
    await this.#pc.setLocalDescription({ type: 'answer', sdp: preferPassiveDtls(answer.sdp) });
    if (this.#sizeSockets) for (const t of this.#pc.dtlsTransports) this.#sizeSockets(t);
    const sdp = this.#pc.localDescription?.sdp ?? answer.sdp;

    const offered = new Map(body.tracks.map((t) => [t.trackId, t]));
    for (const trackId of [...this.#tracks.keys()]) {
      if (!offered.has(trackId)) {
        this.#tracks.delete(trackId);
        this.#demand.delete(trackId);
        this.safeEmit('trackEnded', trackId);
      }
    }
    for (const track of body.tracks) {
      if (this.#tracks.has(track.trackId)) continue;
      const mids = track.layers ? track.layers.map((l) => l.mid) : [track.mid];
      const all = this.#pc.getTransceivers();
      const transceivers = mids.map((mid) => all.find((t) => t.mid === mid));
      const missing = mids.filter((_m, k) => transceivers[k] === undefined);
      if (missing.length > 0) {
        this.#logger.warn({ mids: missing }, 'relay offer names an m-line it does not have');
        continue;
      }
      const lines = transceivers as RTCRtpTransceiver[];
      if (track.kind === 'video') for (const t of lines) fixNackWraparound(t.receiver);
      const { mid: _mid, layers, ...rest } = track;
      const info: RelayTrackInfo = layers
        ? { ...rest, layers: layers.map(({ mid: _m, ...layer }) => layer) }
        : rest;
      this.#tracks.set(track.trackId, { info, transceivers: lines });
      if (layers) this.#demand.set(track.trackId, this.#demand.get(track.trackId) ?? []);
      this.safeEmit('track', this.#relayedTrack(info, lines));
    }
    this.#scheduleLayers();
    return { room: body.room, linkId: body.linkId, sdp };
  }

  #relayedTrack(info: RelayTrackInfo, lines: readonly RTCRtpTransceiver[]): RelayedTrack {
    const simulcast = (info.layers?.length ?? 0) > 1;
    return {
      info,
      onPacket: (listener) => {
        const offs: (() => void)[] = [];
        lines.forEach((transceiver, layer) => {
          const attached = new WeakSet<MediaStreamTrack>();
          const attach = (track: MediaStreamTrack) => {
            if (attached.has(track)) return;
            attached.add(track);
            offs.push(track.onReceiveRtp.subscribe((rtp) => listener(rtp, layer)).unSubscribe);
          };
          offs.push(transceiver.onTrack.subscribe(attach).unSubscribe);
          for (const track of transceiver.receiver.tracks) attach(track);
        });
        return () => {
          for (const off of offs) off();
        };
      },
      requestKeyframe: (layer) => {
        if (layer === undefined) for (const t of lines) this.#sendPli(t);
        else {
          const line = lines[layer];
          if (line) this.#sendPli(line);
        }
      },
      setDemand: (layers) => {
        if (!simulcast || this.#closed || !this.#tracks.has(info.trackId)) return;
        const next = [...new Set(layers)]
          .filter((k) => Number.isInteger(k) && k >= 0 && k < lines.length)
          .sort((a, b) => a - b);
        const before = this.#demand.get(info.trackId) ?? [];
        if (next.length === before.length && next.every((k, i) => k === before[i])) return;
        this.#demand.set(info.trackId, next);
        this.#scheduleLayers();
      },
    };
  }

  /** Layers this node asks for on the link now, by track (for tests and the admin API). */
  get layerDemand(): ReadonlyMap<string, readonly number[]> {
    return this.#demand;
  }

  /** Changes within one tick go out as one message. */
  #scheduleLayers(): void {
    if (this.#closed || this.#layersScheduled) return;
    this.#layersScheduled = true;
    setImmediate(() => {
      this.#layersScheduled = false;
      this.#sendLayers();
    });
  }

  /** The whole link's demand, then again every LAYERS_REFRESH_MS while there is any. */
  #sendLayers(): void {
    clearTimeout(this.#layersRefresh);
    this.#layersRefresh = undefined;
    if (this.#closed || this.#demand.size === 0) return;
    const body: LayersBody = {
      room: this.room,
      linkId: this.linkId,
      tracks: [...this.#demand].map(([trackId, layers]) => ({ trackId, layers })),
    };
    this.#notify(body).catch((error: unknown) =>
      this.#logger.debug({ err: error }, 'relay layers not sent; the refresh retries'),
    );
    this.#layersRefresh = setTimeout(() => this.#sendLayers(), LAYERS_REFRESH_MS);
  }

  /**
   * A PLI back to the sending node. Until this side's DTLS is up (a subscriber here can ask
   * before the link has connected) it is kept and sent on connect: dropping it would leave
   * the subscriber without a keyframe, since the publication counts it as asked.
   */
  #sendPli(transceiver: RTCRtpTransceiver): void {
    if (this.#closed) return;
    const ssrc = transceiver.receiver.tracks[0]?.ssrc;
    if (ssrc === undefined || this.#pc.connectionState !== 'connected') {
      this.#pendingPli.add(transceiver);
      // Also retried on a short timer: the SSRC may only be known with the first packet.
      this.#pliRetry ??= setTimeout(() => {
        this.#pliRetry = undefined;
        const pending = [...this.#pendingPli];
        this.#pendingPli.clear();
        for (const t of pending) this.#sendPli(t);
      }, PLI_RETRY_MS);
      return;
    }
    const pli = pliPacket(transceiver.receiver.rtcpSsrc, ssrc);
    transceiver.receiver.dtlsTransport.sendRtcp([pli]).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'relay PLI failed; retrying on connect');
      this.#pendingPli.add(transceiver);
    });
  }

  /** Closes the PeerConnection; every relayed track ends first. Idempotent. */
  async close(reason: RelayReceiverCloseReason): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#liveness.close();
    clearTimeout(this.#pliRetry);
    clearTimeout(this.#layersRefresh);
    this.#demand.clear();
    this.#pendingPli.clear();
    for (const trackId of this.#tracks.keys()) this.safeEmit('trackEnded', trackId);
    this.#tracks.clear();
    await this.#pc.close().catch(() => undefined);
    this.safeEmit('closed', reason);
    this.removeAllListeners();
  }
}
