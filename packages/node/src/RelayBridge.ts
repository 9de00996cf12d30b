import { LIMITS, type Logger, type NodeConfig, type StallDetector } from '@geosfu/common';
import { codecFromSpec, relayReceiverPeerConfig, relaySenderPeerConfig } from '@geosfu/media';
import type { NodeRegistry, WebhookInput } from '@geosfu/registry';
import {
  type RelayBus,
  type RelayedTrack,
  type RelayLink,
  RelayManager,
  type RelayReceiver,
} from '@geosfu/relay';
import type { LocalRooms } from './LocalRooms.js';
import type { NodeMetrics } from './metrics.js';
import { Publication } from './Publication.js';
import { relaySourceOf } from './relaySource.js';

/**
 * Between the node's rooms and the relay package: the room monitor (`RelayManager`) sees the
 * rooms through this bridge, and each track another node relays here becomes a `Publication`
 * of the local room, created and closed here (the room only lists it and subscribes its
 * participants). Cluster mode only: a single node relays nothing.
 */
export class RelayBridge {
  readonly #relays: RelayManager;
  readonly #bus: RelayBus;
  readonly #rooms: LocalRooms;
  readonly #metrics: NodeMetrics;
  readonly #logger: Logger;
  /** Relayed publications by room, then track id. */
  readonly #relayed = new Map<string, Map<string, Publication>>();
  #closed = false;

  constructor(options: {
    /** The relay signalling bus; its creator (the CLI) starts and closes it. */
    bus: RelayBus;
    config: NodeConfig;
    metrics: NodeMetrics;
    stalls: StallDetector;
    registry: NodeRegistry;
    rooms: LocalRooms;
    logger: Logger;
    /** Relay links this node sends on opened or closed, for the webhooks. */
    notify: (event: WebhookInput) => void;
  }) {
    const { config, metrics, rooms } = options;
    this.#bus = options.bus;
    this.#rooms = rooms;
    this.#metrics = metrics;
    this.#logger = options.logger;
    this.#relays = new RelayManager({
      nodeId: config.nodeId,
      signals: options.bus,
      view: {
        localSources: (room) =>
          [...(rooms.get(room)?.participants ?? [])].flatMap((p) =>
            [...p.publications.values()].map((pub) => relaySourceOf(pub)),
          ),
        remoteNodes: (room) => {
          const nodes = new Set<string>();
          for (const session of rooms.get(room)?.remoteSessions.values() ?? [])
            if (session.nodeId !== config.nodeId) nodes.add(session.nodeId);
          return nodes;
        },
      },
      senderConfig: relaySenderPeerConfig(config),
      receiverConfig: relayReceiverPeerConfig(config),
      udpReceiveBuffer: config.udpReceiveBuffer,
      peerTimeoutMs: config.peerTimeoutMs,
      clock: options.stalls,
      nodes: options.registry,
      logger: options.logger,
    });
    this.#wire();
    const relay = (link: { room: string; remoteNode: string }) => ({
      room: link.room,
      relay: { fromNode: config.nodeId, toNode: link.remoteNode },
    });
    this.#relays.on('linkOpened', (link) =>
      options.notify({ event: 'relay_opened', ...relay(link) }),
    );
    this.#relays.on('linkClosed', (link) =>
      options.notify({ event: 'relay_closed', ...relay(link) }),
    );
  }

  get links(): readonly RelayLink[] {
    return this.#relays.links;
  }

  get receivers(): readonly RelayReceiver[] {
    return this.#relays.receivers;
  }

  /** Who is where, or what they publish, changed in this room: links follow. */
  reconcile(room: string): void {
    this.#relays.reconcile(room);
  }

  /** The room has nobody here any more: its links, receivers and relayed tracks go. */
  async closeRoom(room: string): Promise<void> {
    this.#closeRelayed(room);
    await this.#relays.closeRoom(room);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#relays.close();
    for (const room of [...this.#relayed.keys()]) this.#closeRelayed(room);
  }

  #wire(): void {
    const bus = this.#bus;
    const relays = this.#relays;
    const metrics = this.#metrics;
    bus.onRequest((from, _type, body) => relays.handleOffer(from, body));
    bus.on('linkClose', (from, body) => void relays.handleClose(from, body));
    bus.on('linkLayers', (from, body) => relays.handleLayers(from, body));
    bus.on('rejected', (reason) => metrics.relayRejected.inc({ reason }));
    bus.on('redisError', (op) => metrics.redisErrors.inc({ op }));
    bus.on('requestAnswered', (type, tries) =>
      // Our PUBLISH per try, and the far node's PUBLISH of the reply.
      metrics.relayRequestRoundTrips.observe({ type }, tries + 1),
    );
    relays.on('relayedTrack', (room, from, track) => this.#onRelayedTrack(room, from, track));
    relays.on('relayedTrackEnded', (room, trackId) => {
      const publication = this.#relayed.get(room)?.get(trackId);
      this.#relayed.get(room)?.delete(trackId);
      publication?.close();
    });
    relays.on('linkEstablished', (_link, ms) => metrics.relaySetupDuration.observe(ms / 1000));
    relays.on('linkClosed', (_link, reason) => metrics.relayLinkCloses.inc({ reason }));
    relays.on('receiverClosed', (_r, reason) => metrics.relayReceiverCloses.inc({ reason }));
    const out = {
      audio: metrics.stream('out', 'audio', 'relay'),
      video: metrics.stream('out', 'video', 'relay'),
    };
    const layerOut = Array.from({ length: LIMITS.maxSimulcastLayers }, (_, i) =>
      metrics.relayLayerPackets.labels(String(i)),
    );
    relays.on('linkOpened', (link) => {
      link.on('packetOut', (kind, bytes, layer) => {
        out[kind].packets.inc();
        out[kind].bytes.inc(bytes);
        if (layer !== undefined) layerOut[layer]?.inc();
      });
    });
    metrics.countRelayLayers(() => relays.links.reduce((n, link) => n + link.layersCarried, 0));
  }

  /** A track relayed from another node becomes a publication of this node's room. */
  #onRelayedTrack(roomName: string, from: string, track: RelayedTrack): void {
    const room = this.#rooms.get(roomName);
    if (!room || this.#closed) return;
    const { info } = track;
    const layers = info.layers;
    const publication = new Publication({
      trackId: info.trackId,
      kind: info.kind,
      source: info.source,
      participantSid: info.participantSid,
      identity: info.identity,
      codec: codecFromSpec(info.codec),
      // A PLI for a layer goes back on that layer's m-line of the link.
      origin: { path: 'relay', requestKeyframe: (layer) => track.requestKeyframe(layer) },
      metrics: this.#metrics,
      logger: this.#logger.child({ component: 'relayed', from, trackId: info.trackId }),
      // Simulcast: the same layers as at the origin; the link carries exactly those that the
      // subscribers here need ('exact' demand), and the others read as paused.
      ...(layers ? { layers, demand: 'exact' as const } : {}),
    });
    const stop = track.onPacket((rtp, layer) => publication.forward(rtp, layer));
    if (layers) {
      publication.on('dynacast', (rids) =>
        track.setDemand(rids.map((rid) => layers.findIndex((l) => l.rid === rid))),
      );
    }
    publication.once('close', stop);
    let byTrack = this.#relayed.get(roomName);
    if (!byTrack) {
      byTrack = new Map();
      this.#relayed.set(roomName, byTrack);
    }
    // A rebuilt link brings the track again: the new publication replaces the old one.
    byTrack.get(info.trackId)?.close();
    byTrack.set(info.trackId, publication);
    room.addRelayed(publication);
  }

  #closeRelayed(room: string): void {
    const byTrack = this.#relayed.get(room);
    this.#relayed.delete(room);
    for (const publication of byTrack?.values() ?? []) publication.close();
  }
}
