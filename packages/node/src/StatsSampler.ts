import type { Logger, ServerMessage, StreamStats } from '@geosfu/common';
import type { RTCPeerConnection } from 'werift';
import type { NodeMetrics, Path } from './metrics.js';
import type { Participant } from './Participant.js';
import type { Publication } from './Publication.js';

/** How often RTT, jitter and loss are sampled into the metrics. */
const STATS_INTERVAL_MS = 5_000;

/** A PeerConnection to sample, with the labels of its samples. */
export interface SampledPeer {
  pc: RTCPeerConnection;
  path: Path;
  /** The region at the far end (a client leg's is the node's own). */
  peerRegion: string;
}

/**
 * The node's view of its streams from werift's stats (RTCP reports), off the packet path:
 * every 5 s one `getStats()` per connected PeerConnection feeds the RTT, jitter and loss
 * histograms and `sfu_packets_lost_total`; on request, a participant's own streams (the
 * signalling `stats` message).
 */
export class StatsSampler {
  readonly #metrics: NodeMetrics;
  readonly #peers: () => Iterable<SampledPeer>;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  /** Per participant and stream: bytes at its previous stats request, for a bitrate. */
  readonly #lastStats = new WeakMap<Participant, Map<string, { bytes: number; at: number }>>();
  /** Per receiving PeerConnection and SSRC: the highest cumulative `packetsLost` counted. */
  readonly #lostCounted = new WeakMap<RTCPeerConnection, Map<number, number>>();

  constructor(options: {
    metrics: NodeMetrics;
    /** Every PeerConnection of the node at the time of the call. */
    peers: () => Iterable<SampledPeer>;
    logger: Logger;
  }) {
    this.#metrics = options.metrics;
    this.#peers = options.peers;
    this.#logger = options.logger;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      this.sample().catch((error: unknown) =>
        this.#logger.warn({ err: error }, 'stats sampling failed'),
      );
    }, STATS_INTERVAL_MS);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One round: RTT, jitter and fraction lost of every stream into the histograms, labelled
   * with the path and the far end's region. Our receivers' cumulative `packetsLost`
   * (publishers, relay receivers) feeds `sfu_packets_lost_total` with what it grew by since
   * the highest value counted for that PeerConnection and SSRC: it can shrink (a late or
   * retransmitted packet arrives), and counting from the high-water mark never counts a
   * packet twice and never goes negative.
   */
  async sample(): Promise<void> {
    const metrics = this.#metrics;
    for (const { pc, path, peerRegion: peer } of [...this.#peers()]) {
      if (pc.connectionState !== 'connected') continue;
      let report: Awaited<ReturnType<RTCPeerConnection['getStats']>>;
      try {
        report = await pc.getStats();
      } catch {
        continue; // closed while we sampled
      }
      for (const stat of report.values() as Iterable<Record<string, unknown>>) {
        const kind = stat.kind === 'audio' ? 'audio' : 'video';
        if (stat.type === 'remote-inbound-rtp') {
          const rtt = finite(stat.roundTripTime);
          if (rtt !== undefined && rtt > 0) metrics.rtt.observe({ path, peer_region: peer }, rtt);
          const jitter = finite(stat.jitter);
          if (jitter !== undefined)
            metrics.jitter.observe({ kind, path, peer_region: peer }, jitter);
          const lost = finite(stat.fractionLost);
          if (lost !== undefined) metrics.lossRatio.observe({ path, peer_region: peer }, lost);
        } else if (stat.type === 'inbound-rtp') {
          const jitter = finite(stat.jitter);
          if (jitter !== undefined)
            metrics.jitter.observe({ kind, path, peer_region: peer }, jitter);
          const lost = finite(stat.packetsLost);
          const ssrc = finite(stat.ssrc);
          if (lost !== undefined && ssrc !== undefined) this.#countLost(pc, ssrc, lost, kind, path);
        }
      }
    }
  }

  #countLost(
    pc: RTCPeerConnection,
    ssrc: number,
    lost: number,
    kind: 'audio' | 'video',
    path: Path,
  ) {
    let counted = this.#lostCounted.get(pc);
    if (!counted) {
      counted = new Map();
      this.#lostCounted.set(pc, counted);
    }
    const before = counted.get(ssrc) ?? 0;
    if (lost > before) {
      this.#metrics.packetsLost.inc({ kind, path }, lost - before);
      counted.set(ssrc, lost);
    }
  }

  /**
   * The `stats` reply: the node's view of a participant's own streams. Each publication
   * appears once, as the inbound stream of its own m-line (found by its mid); each
   * subscription as the outbound stream of its m-line.
   */
  async participantStats(
    participant: Participant,
    ref: string | undefined,
  ): Promise<ServerMessage> {
    const streams: StreamStats[] = [];
    const { publisher, subscriber } = participant.peerConnections;
    const trackOfMid = new Map<string, { trackId: string; kind: 'audio' | 'video' }>();
    for (const s of participant.subscriptions.values()) {
      if (s.mid)
        trackOfMid.set(s.mid, {
          trackId: s.publication.trackId,
          kind: s.publication.kind,
        });
    }
    const inbound = publisher ? await statValues(publisher) : [];
    for (const p of participant.publications.values())
      streams.push(inboundStream(p, participant.publicationMid(p), publisher, inbound));
    await collectOutbound(subscriber, trackOfMid, streams);
    // Bitrate over the interval since this participant's previous stats request.
    const now = performance.now();
    const previous =
      this.#lastStats.get(participant) ?? new Map<string, { bytes: number; at: number }>();
    const current = new Map<string, { bytes: number; at: number }>();
    for (const s of streams) {
      const key = `${s.direction}:${s.trackId}`;
      const before = previous.get(key);
      if (before && now > before.at)
        s.bitrateKbps = Math.round(((s.bytes - before.bytes) * 8) / (now - before.at));
      current.set(key, { bytes: s.bytes, at: now });
    }
    this.#lastStats.set(participant, current);
    return { type: 'stats', ...(ref ? { ref } : {}), streams };
  }
}

function finite(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

type StatValue = Record<string, unknown> & { type?: string; kind?: string; mid?: string };

async function statValues(pc: RTCPeerConnection): Promise<StatValue[]> {
  return [...(await pc.getStats()).values()] as unknown as StatValue[];
}

/**
 * One publication's inbound stream. werift's inbound-rtp entries are per received SSRC; those
 * of the publication's m-line are found through its transceiver (by mid) and the SSRCs of its
 * receiver's tracks. A simulcast m-line has none (pitfall 7) or one per layer at most: its
 * packets and bytes are the publication's own counts, every layer, and loss and jitter what
 * werift's entries say, if any.
 */
function inboundStream(
  publication: Publication,
  mid: string | undefined,
  pc: RTCPeerConnection | undefined,
  values: StatValue[],
): StreamStats {
  const transceiver =
    mid === undefined ? undefined : pc?.getTransceivers().find((t) => t.mid === mid);
  const ssrcs = new Set(transceiver?.receiver.tracks.map((t) => t.ssrc) ?? []);
  const entries = values.filter(
    (s) => s.type === 'inbound-rtp' && typeof s.ssrc === 'number' && ssrcs.has(s.ssrc),
  );
  const num = (v: unknown) => finite(v) ?? 0;
  const [only] = entries;
  const own = publication.simulcast || entries.length !== 1 || !only;
  const jitters = entries.map((s) => finite(s.jitter)).filter((j) => j !== undefined);
  return {
    trackId: publication.trackId,
    kind: publication.kind,
    direction: 'inbound',
    packets: own ? publication.packetsIn : num(only.packetsReceived),
    bytes: own ? publication.bytesIn : num(only.bytesReceived),
    packetsLost: entries.reduce((sum, s) => sum + num(s.packetsLost), 0),
    jitterMs: jitters.length > 0 ? Math.max(...jitters) * 1000 : null,
    rttMs: null,
    bitrateKbps: 0,
  };
}

/** The subscriber PeerConnection's outbound streams, named by the subscriptions' mids. */
async function collectOutbound(
  pc: RTCPeerConnection | undefined,
  trackOfMid: Map<string, { trackId: string; kind: 'audio' | 'video' }>,
  out: StreamStats[],
): Promise<void> {
  if (!pc) return;
  const values = await statValues(pc);
  for (const s of values) {
    if (s.type !== 'outbound-rtp') continue;
    const kind = s.kind === 'audio' ? 'audio' : 'video';
    const mapped = typeof s.mid === 'string' ? trackOfMid.get(s.mid) : undefined;
    const remote = values.find((r) => r.type === 'remote-inbound-rtp' && r.localId === s.id);
    const num = (v: unknown) => finite(v) ?? 0;
    out.push({
      trackId: mapped?.trackId ?? String(s.trackIdentifier ?? s.id ?? ''),
      kind: mapped?.kind ?? kind,
      direction: 'outbound',
      packets: num(s.packetsSent),
      bytes: num(s.bytesSent),
      packetsLost: num(remote?.packetsLost),
      jitterMs: typeof remote?.jitter === 'number' ? remote.jitter * 1000 : null,
      rttMs: typeof remote?.roundTripTime === 'number' ? remote.roundTripTime * 1000 : null,
      bitrateKbps: 0,
    });
  }
}
