/**
 * The node's Prometheus metrics. Objects on the media path get pre-labelled children so a
 * forwarded packet costs a counter increment and nothing else; gauges are computed from the
 * node's state when Prometheus scrapes, so nothing has to keep them in step.
 * Labels stay bounded: never a room, session or participant id.
 */
import { LIMITS, type TrackKind } from '@geosfu/common';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Path = 'client' | 'relay';
export type Direction = 'in' | 'out';

export interface NodeGaugeSource {
  rooms(): number;
  participants(): number;
  /** PeerConnection set-ups in progress and waiting for their turn (HandshakeGate). */
  handshakes(): { active: number; waiting: number };
  publishedTracks(kind: TrackKind): number;
  subscriptions(kind: TrackKind): number;
  /** One entry per relay link: the far node's region and whether we send or receive on it. */
  relayLinks(): { peerRegion: string; direction: 'out' | 'in' }[];
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly packets: Counter<'direction' | 'kind' | 'path'>;
  readonly bytes: Counter<'direction' | 'kind' | 'path'>;
  readonly packetsLost: Counter<'kind' | 'path'>;
  readonly pli: Counter<'direction'>;
  readonly nack: Counter<'direction'>;
  readonly keyframes: Counter;
  readonly publisherFeedback: Counter;
  readonly simulcastLayerPackets: Counter<'layer'>;
  readonly simulcastPausedLayers: Gauge;
  readonly layerSwitches: Counter<'direction'>;
  readonly signalErrors: Counter<'code'>;
  /** WHIP and WHEP sessions created (`kind`: whip, whep); they count as participants too. */
  readonly httpSessions: Counter<'kind'>;
  readonly joinDuration: Histogram;
  readonly subscriberEstimate: Histogram;
  readonly subscriberProbes: Counter;
  readonly subscriberPacedPackets: Counter;
  readonly subscriberRetransmissions: Counter<'outcome'>;
  readonly admissionWait: Histogram<'result'>;
  readonly routeDecisions: Counter<'result'>;
  readonly redisErrors: Counter<'op'>;
  readonly redisFailovers: Counter;
  readonly relayRejected: Counter<'reason'>;
  readonly relayRequestRoundTrips: Histogram<'type'>;
  readonly clusterRejected: Counter<'kind' | 'reason'>;
  readonly orphansReaped: Counter;
  /** Room service commands on our channel that were dropped (forged, unsigned, replayed). */
  readonly roomCommandsRejected: Counter<'reason'>;
  /** Webhook delivery tries by outcome. */
  readonly webhookDeliveries: Counter<'result'>;
  readonly relaySetupDuration: Histogram;
  readonly redisRoundTrip: Histogram;
  readonly roomRoundTrips: Histogram<'op'>;
  readonly relayLinkCloses: Counter;
  readonly relayLayerPackets: Counter<'layer'>;
  /** What `sfu_relay_layers_carried` reads; the relay bridge sets it (cluster mode). */
  #relayLayersCarried: () => number = () => 0;
  readonly relayReceiverCloses: Counter;
  readonly stalls: Counter;
  readonly rtt: Histogram<'path' | 'peer_region'>;
  readonly jitter: Histogram<'kind' | 'path' | 'peer_region'>;
  readonly lossRatio: Histogram<'path' | 'peer_region'>;

  constructor(info: { nodeId: string; region: string; version: string }, source: NodeGaugeSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'sfu_node_info',
      help: 'Constant 1, labelled with the node identity',
      labelNames: ['node', 'region', 'version'],
      registers,
    }).set({ node: info.nodeId, region: info.region, version: info.version }, 1);
    new Gauge({
      name: 'sfu_rooms',
      help: 'Rooms with at least one participant on this node',
      registers,
      collect() {
        this.set(source.rooms());
      },
    });
    new Gauge({
      name: 'sfu_participants',
      help: 'Participants connected to this node',
      registers,
      collect() {
        this.set(source.participants());
      },
    });
    new Gauge({
      name: 'sfu_published_tracks',
      help: 'Tracks published on this node',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const kind of ['audio', 'video'] as const)
          this.set({ kind }, source.publishedTracks(kind));
      },
    });
    new Gauge({
      name: 'sfu_subscriptions',
      help: 'Tracks forwarded to subscribers of this node',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const kind of ['audio', 'video'] as const)
          this.set({ kind }, source.subscriptions(kind));
      },
    });
    new Gauge({
      name: 'sfu_relay_links',
      help: 'Relay links to other nodes: out = this node sends (it has the publishers), in = it receives',
      labelNames: ['peer_region', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const link of source.relayLinks())
          this.inc({ peer_region: link.peerRegion, direction: link.direction });
      },
    });
    this.packets = new Counter({
      name: 'sfu_packets_total',
      help: 'RTP packets by direction, kind and path',
      labelNames: ['direction', 'kind', 'path'],
      registers,
    });
    this.bytes = new Counter({
      name: 'sfu_bytes_total',
      help: 'RTP payload bytes by direction, kind and path',
      labelNames: ['direction', 'kind', 'path'],
      registers,
    });
    this.packetsLost = new Counter({
      name: 'sfu_packets_lost_total',
      help: 'RTP packets lost on their way to this node (publishers and relay links), from its receivers (RTCP cumulative lost, net of late and retransmitted arrivals), counted every stats round',
      labelNames: ['kind', 'path'],
      registers,
    });
    this.pli = new Counter({
      name: 'sfu_pli_total',
      help: 'Picture loss indications: in = from subscribers, out = sent to publishers',
      labelNames: ['direction'],
      registers,
    });
    this.nack = new Counter({
      name: 'sfu_nack_total',
      help: 'NACK packets: in = from subscribers, out = sent to publishers',
      labelNames: ['direction'],
      registers,
    });
    this.keyframes = new Counter({
      name: 'sfu_keyframes_total',
      help: 'Video keyframes received from publishers',
      registers,
    });
    this.publisherFeedback = new Counter({
      name: 'sfu_publisher_feedback_packets_total',
      help: 'Transport-wide congestion control feedback packets sent to publishers',
      registers,
    });
    this.simulcastLayerPackets = new Counter({
      name: 'sfu_simulcast_layer_packets_total',
      help: 'RTP packets received from simulcast publishers, by layer index (0 = lowest)',
      labelNames: ['layer'],
      registers,
    });
    for (let layer = 0; layer < LIMITS.maxSimulcastLayers; layer++)
      this.simulcastLayerPackets.inc({ layer: String(layer) }, 0);
    this.simulcastPausedLayers = new Gauge({
      name: 'sfu_simulcast_paused_layers',
      help: 'Simulcast layers of publishers on this node paused by dynacast (no subscriber needs them)',
      registers,
    });
    this.layerSwitches = new Counter({
      name: 'sfu_layer_switches_total',
      help: "Simulcast layer switches of subscribers (at the target layer's keyframe), up or down",
      labelNames: ['direction'],
      registers,
    });
    for (const direction of ['up', 'down'] as const) this.layerSwitches.inc({ direction }, 0);
    this.signalErrors = new Counter({
      name: 'sfu_signal_errors_total',
      help: 'Errors sent to signalling clients, by code',
      labelNames: ['code'],
      registers,
    });
    this.httpSessions = new Counter({
      name: 'sfu_http_sessions_total',
      help: 'WHIP (publish) and WHEP (watch) sessions created over HTTP, by kind',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['whip', 'whep'] as const) this.httpSessions.inc({ kind }, 0);
    this.routeDecisions = new Counter({
      name: 'sfu_route_decisions_total',
      help: 'Answers of /v1/route by reason (nearest, least-loaded-nearby, pinned-region, pinned-node, default-region, room-affinity) or error',
      labelNames: ['result'],
      registers,
    });
    this.redisErrors = new Counter({
      name: 'sfu_redis_errors_total',
      help: 'Redis commands or connections that failed, by operation',
      labelNames: ['op'],
      registers,
    });
    this.redisFailovers = new Counter({
      name: 'sfu_redis_failovers_total',
      help: 'Times the Redis connection found the master on another server than before (Redis Sentinel failover)',
      registers,
    });
    this.relayRejected = new Counter({
      name: 'sfu_relay_messages_rejected_total',
      help: 'Relay signalling messages dropped: malformed, bad signature, stale, duplicate, wrong recipient',
      labelNames: ['reason'],
      registers,
    });
    this.clusterRejected = new Counter({
      name: 'sfu_cluster_messages_rejected_total',
      help: 'Cluster state in Redis that did not verify and changed nothing: room events, session records, node records, membership messages (malformed, signature, stale, duplicate, invalid) and expiry or down notices of live nodes (node-alive)',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.roomCommandsRejected = new Counter({
      name: 'sfu_room_commands_rejected_total',
      help: 'Room service commands dropped: malformed, bad signature, stale, duplicate, wrong recipient',
      labelNames: ['reason'],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'sfu_webhook_deliveries_total',
      help: 'Webhook delivery tries: delivered, retried (failed, tried again), failed (given up), dropped (too many pending)',
      labelNames: ['result'],
      registers,
    });
    this.orphansReaped = new Counter({
      name: 'sfu_orphan_sessions_reaped_total',
      help: 'Sessions removed from rooms because their node had no registry record for longer than the grace (two registry TTLs)',
      registers,
    });
    new Gauge({
      name: 'sfu_admission_queue_length',
      help: 'PeerConnection set-ups waiting for their turn (SFU_MAX_CONCURRENT_HANDSHAKES are in progress at most)',
      registers,
      collect() {
        this.set(source.handshakes().waiting);
      },
    });
    new Gauge({
      name: 'sfu_handshakes_in_progress',
      help: 'PeerConnection set-ups (ICE and DTLS) in progress',
      registers,
      collect() {
        this.set(source.handshakes().active);
      },
    });
    this.admissionWait = new Histogram({
      name: 'sfu_admission_wait_seconds',
      help: 'How long a PeerConnection set-up waited for its turn: admitted, or refused with SERVICE_BUSY',
      labelNames: ['result'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60],
      registers,
    });
    for (const result of ['admitted', 'busy']) this.admissionWait.zero({ result });
    this.relaySetupDuration = new Histogram({
      name: 'sfu_relay_setup_duration_seconds',
      help: 'From opening a relay link to its PeerConnection connecting',
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10],
      registers,
    });
    this.relayLinkCloses = new Counter({
      name: 'sfu_relay_link_closes_total',
      help: 'Outgoing relay links closed, by reason (link-failed and closed-by-peer are failures; no-participants, room-closed and node-shutdown are not)',
      labelNames: ['reason'],
      registers,
    });
    this.relayLayerPackets = new Counter({
      name: 'sfu_relay_layer_packets_total',
      help: 'RTP packets sent on relay links on the m-lines of simulcast layers, by layer index (0 = lowest); a layer is sent only while the far node asks for it',
      labelNames: ['layer'],
      registers,
    });
    for (let layer = 0; layer < LIMITS.maxSimulcastLayers; layer++)
      this.relayLayerPackets.inc({ layer: String(layer) }, 0);
    const metrics = this;
    new Gauge({
      name: 'sfu_relay_layers_carried',
      help: 'Simulcast layer m-lines sending now on the relay links of this node (layers the far nodes asked for)',
      registers,
      collect() {
        this.set(metrics.#relayLayersCarried());
      },
    });
    this.relayReceiverCloses = new Counter({
      name: 'sfu_relay_receiver_closes_total',
      help: 'Incoming relay links closed, by reason (peer-timeout, peer-connection-failed and node-down mean the sending side died or went silent)',
      labelNames: ['reason'],
      registers,
    });
    this.stalls = new Counter({
      name: 'sfu_stalls_total',
      help: 'Times the node process was not running for more than 1 s (stopped, starved, a long GC pause); liveness timers skip that time',
      registers,
    });
    this.redisRoundTrip = new Histogram({
      name: 'sfu_redis_roundtrip_seconds',
      help: 'Round trip of the registry heartbeat write to Redis (one sample per heartbeat)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1],
      registers,
    });
    this.relayRequestRoundTrips = new Histogram({
      name: 'sfu_relay_request_round_trips',
      help: "Sequential Redis round trips of an answered relay request (a link set-up or renegotiation offer): our PUBLISH per try and the far node's PUBLISH of the answer; 2 when nothing was lost",
      labelNames: ['type'],
      buckets: [2, 3, 4, 5],
      registers,
    });
    this.roomRoundTrips = new Histogram({
      name: 'sfu_room_store_round_trips',
      help: 'Sequential Redis round trips of one room store operation (join: 2 uncontended; leave, setTracks: lock, read, write, release), by operation',
      labelNames: ['op'],
      buckets: [1, 2, 3, 4, 5, 6, 8, 12, 20],
      registers,
    });
    // One sample per stream per stats round (every STATS_INTERVAL_MS), from RTCP reports.
    this.rtt = new Histogram({
      name: 'sfu_rtt_seconds',
      help: 'Round-trip time to the peer from RTCP receiver reports, per stream and sample',
      labelNames: ['path', 'peer_region'],
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1],
      registers,
    });
    this.jitter = new Histogram({
      name: 'sfu_jitter_seconds',
      help: 'Interarrival jitter (RFC 3550) from RTCP reports and our receivers, per stream and sample',
      labelNames: ['kind', 'path', 'peer_region'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
      registers,
    });
    this.lossRatio = new Histogram({
      name: 'sfu_loss_ratio',
      help: 'Fraction of packets lost (RTCP fraction lost), per stream and sample',
      labelNames: ['path', 'peer_region'],
      buckets: [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
      registers,
    });
    this.joinDuration = new Histogram({
      name: 'sfu_join_duration_seconds',
      help: 'From a join message to the first media packet sent to that participant',
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10],
      registers,
    });
    // One sample per subscriber PeerConnection per second (SubscriberPeer), from its
    // transport-wide congestion control feedback.
    this.subscriberEstimate = new Histogram({
      name: 'sfu_subscriber_estimate_bps',
      help: 'Bandwidth estimate toward each subscriber (bit/s), sampled once per second per subscriber',
      buckets: [
        50_000, 100_000, 200_000, 300_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000,
        3_000_000, 5_000_000, 10_000_000, 20_000_000,
      ],
      registers,
    });
    this.subscriberProbes = new Counter({
      name: 'sfu_subscriber_probes_total',
      help: 'Probe clusters (short padding bursts above the estimate) sent toward subscribers',
      registers,
    });
    this.subscriberPacedPackets = new Counter({
      name: 'sfu_subscriber_paced_packets_total',
      help: 'Packets toward subscribers that waited in the pacer (a burst above 1.25 times the estimate)',
      registers,
    });
    this.subscriberRetransmissions = new Counter({
      name: 'sfu_subscriber_retransmissions_total',
      help: 'Packets subscribers NACKed: resent, or skipped (asked again within a round trip, or over a quarter of the estimate per second)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['resent', 'skipped'] as const)
      this.subscriberRetransmissions.inc({ outcome }, 0);
    // Every series of the media counters exists from the start, at 0: rate() and increase()
    // then see the first packets, and dashboards show 0 rather than "no data".
    for (const kind of ['audio', 'video'] as const) {
      for (const path of ['client', 'relay'] as const) {
        for (const direction of ['in', 'out'] as const) {
          this.packets.inc({ direction, kind, path }, 0);
          this.bytes.inc({ direction, kind, path }, 0);
        }
        this.packetsLost.inc({ kind, path }, 0);
      }
    }
    for (const direction of ['in', 'out'] as const) {
      this.pli.inc({ direction }, 0);
      this.nack.inc({ direction }, 0);
    }
  }

  /** Counters for one stream, bound once so the packet path does no label lookups. */

  /** The relay bridge's count of layer m-lines sending, read at each scrape. */
  countRelayLayers(source: () => number): void {
    this.#relayLayersCarried = source;
  }

  stream(
    direction: Direction,
    kind: TrackKind,
    path: Path,
  ): { packets: Counter.Internal; bytes: Counter.Internal } {
    return {
      packets: this.packets.labels(direction, kind, path),
      bytes: this.bytes.labels(direction, kind, path),
    };
  }
}
