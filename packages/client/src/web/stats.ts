/**
 * Per-connection statistics from `RTCPeerConnection.getStats()`: bitrate, round-trip time and
 * packets lost, plus audio levels by m-line for the "speaking" highlight. And the node's view
 * of the same streams, from the signalling `stats` request.
 */
import type { StreamStats } from '@geosfu/common/protocol';

/** One stats entry, read field by field (the DOM typings give them as `any`). */
type StatsEntry = {
  readonly id: string;
  readonly type: string;
  readonly timestamp: number;
} & Record<string, unknown>;

export interface ConnectionStats {
  /** Media bitrate of the connection's RTP streams, in kbit/s (null on the first sample). */
  kbps: number | null;
  /** Round-trip time of the selected ICE candidate pair, in milliseconds. */
  rttMs: number | null;
  /** Packets lost: reported by the far end for what we send, counted locally for what we receive. */
  packetsLost: number;
  /** Audio level (0..1) of each inbound audio m-line, by mid. */
  audioLevelByMid: Map<string, number>;
  /** Audio level (0..1) of the local microphone, when this connection sends it. */
  localAudioLevel: number | null;
  /** Each inbound video m-line's decoding, by mid. */
  videoByMid: Map<string, VideoStats>;
  /** Each outbound simulcast layer, by rid. */
  layersByRid: Map<string, OutboundLayerStats>;
}

/** A received video as decoded here (`inbound-rtp`). */
export interface VideoStats {
  frameWidth: number;
  frameHeight: number;
  framesPerSecond: number | null;
  framesDecoded: number;
  /** Seconds the video was frozen (Chromium's freeze detection). */
  totalFreezesDuration: number;
}

/** One simulcast layer as the encoder sends it (`outbound-rtp` with a rid). */
export interface OutboundLayerStats {
  bytesSent: number;
  frameWidth: number;
  frameHeight: number;
  framesPerSecond: number | null;
}

const num = (entry: StatsEntry | undefined, field: string): number | null => {
  const value = entry?.[field];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
};
const str = (entry: StatsEntry | undefined, field: string): string | null => {
  const value = entry?.[field];
  return typeof value === 'string' ? value : null;
};

/** Samples one PeerConnection; keeps the previous byte counters to turn them into a bitrate. */
export class StatsSampler {
  #previous = new Map<string, { bytes: number; timestamp: number }>();

  constructor(readonly direction: 'inbound' | 'outbound') {}

  async sample(pc: RTCPeerConnection): Promise<ConnectionStats> {
    const report = await pc.getStats();
    const entries = new Map<string, StatsEntry>();
    report.forEach((value: StatsEntry, key: string) => {
      entries.set(key, value);
    });

    const rtpType = this.direction === 'inbound' ? 'inbound-rtp' : 'outbound-rtp';
    const bytesField = this.direction === 'inbound' ? 'bytesReceived' : 'bytesSent';
    let bits = 0;
    let packetsLost = 0;
    const audioLevelByMid = new Map<string, number>();
    let localAudioLevel: number | null = null;
    const videoByMid = new Map<string, VideoStats>();
    const layersByRid = new Map<string, OutboundLayerStats>();
    const next = new Map<string, { bytes: number; timestamp: number }>();

    for (const entry of entries.values()) {
      if (entry.type === rtpType) {
        const bytes = num(entry, bytesField) ?? 0;
        next.set(entry.id, { bytes, timestamp: entry.timestamp });
        const before = this.#previous.get(entry.id);
        if (before && entry.timestamp > before.timestamp && bytes >= before.bytes) {
          // bits per millisecond is kilobits per second.
          bits += ((bytes - before.bytes) * 8) / (entry.timestamp - before.timestamp);
        }
        const video = str(entry, 'kind') === 'video';
        const rid = str(entry, 'rid');
        if (this.direction === 'outbound' && video && rid !== null) {
          layersByRid.set(rid, {
            bytesSent: bytes,
            frameWidth: num(entry, 'frameWidth') ?? 0,
            frameHeight: num(entry, 'frameHeight') ?? 0,
            framesPerSecond: num(entry, 'framesPerSecond'),
          });
        }
        if (this.direction === 'inbound') {
          packetsLost += Math.max(0, num(entry, 'packetsLost') ?? 0);
          const mid = str(entry, 'mid');
          if (mid !== null && video) {
            videoByMid.set(mid, {
              frameWidth: num(entry, 'frameWidth') ?? 0,
              frameHeight: num(entry, 'frameHeight') ?? 0,
              framesPerSecond: num(entry, 'framesPerSecond'),
              framesDecoded: num(entry, 'framesDecoded') ?? 0,
              totalFreezesDuration: num(entry, 'totalFreezesDuration') ?? 0,
            });
          }
          const level = num(entry, 'audioLevel');
          if (mid !== null && level !== null && str(entry, 'kind') === 'audio') {
            audioLevelByMid.set(mid, level);
          }
        }
      } else if (entry.type === 'remote-inbound-rtp' && this.direction === 'outbound') {
        packetsLost += Math.max(0, num(entry, 'packetsLost') ?? 0);
      } else if (entry.type === 'media-source' && str(entry, 'kind') === 'audio') {
        localAudioLevel = num(entry, 'audioLevel');
      }
    }
    const first = this.#previous.size === 0;
    this.#previous = next;
    return {
      kbps: first ? null : bits,
      rttMs: selectedPairRtt(entries),
      packetsLost,
      audioLevelByMid,
      localAudioLevel,
      videoByMid,
      layersByRid,
    };
  }
}

function selectedPairRtt(entries: Map<string, StatsEntry>): number | null {
  let pair: StatsEntry | undefined;
  for (const entry of entries.values()) {
    if (entry.type !== 'transport') continue;
    const id = str(entry, 'selectedCandidatePairId');
    if (id !== null) pair = entries.get(id);
  }
  if (!pair) {
    for (const entry of entries.values()) {
      if (
        entry.type === 'candidate-pair' &&
        entry.nominated === true &&
        entry.state === 'succeeded'
      ) {
        pair = entry;
      }
    }
  }
  const seconds = num(pair, 'currentRoundTripTime');
  return seconds === null ? null : seconds * 1000;
}

/** The node's view of this participant (its `stats` reply), summed up for the stats line. */
export interface NodeView {
  /** What the node receives from us, kbit/s (null until a stream's second reply). */
  upKbps: number | null;
  /** What the node sends us, kbit/s. */
  downKbps: number | null;
  /** Node to us, from our receiver reports (the worst stream). */
  rttMs: number | null;
  /** Interarrival jitter, the worst stream either way: as the node measures our upload, or as
   *  we report what it sends. */
  jitterMs: number | null;
  /** Packets lost toward the node plus those we report lost toward us. */
  packetsLost: number;
  /** One line per stream, for the tooltip. */
  detail: string[];
}

/**
 * Sums up the node's `stats` replies. The node gives each stream's bitrate over the interval
 * since this participant's previous request, and 0 for a stream it had not reported before:
 * such a stream's bitrate is unknown (shown as –) until its second reply.
 */
export class NodeStatsView {
  #seen = new Set<string>();

  update(streams: readonly StreamStats[]): NodeView {
    const key = (s: StreamStats) => `${s.direction}:${s.trackId}`;
    const known = (s: StreamStats) => this.#seen.has(key(s));
    const max = (values: (number | null)[]): number | null =>
      values.reduce<number | null>(
        (m, v) => (v === null ? m : m === null ? v : Math.max(m, v)),
        null,
      );
    const kbps = (direction: StreamStats['direction']): number | null => {
      const measured = streams.filter((s) => s.direction === direction && known(s));
      return measured.length === 0 ? null : measured.reduce((n, s) => n + s.bitrateKbps, 0);
    };
    const view: NodeView = {
      upKbps: kbps('inbound'),
      downKbps: kbps('outbound'),
      rttMs: max(streams.map((s) => s.rttMs)),
      jitterMs: max(streams.map((s) => s.jitterMs)),
      packetsLost: streams.reduce((n, s) => n + Math.max(0, s.packetsLost), 0),
      detail: streams.map(
        (s) =>
          `${s.direction === 'inbound' ? 'from you' : 'to you'} ${s.kind}: ${s.packets} packets, ${formatBitrate(
            known(s) ? s.bitrateKbps : null,
          )}, jitter ${formatRtt(s.jitterMs)}, RTT ${formatRtt(s.rttMs)}, lost ${s.packetsLost}`,
      ),
    };
    this.#seen = new Set(streams.map(key));
    return view;
  }
}

/** "850 kbps", "1.2 Mbps". */
export function formatBitrate(kbps: number | null): string {
  if (kbps === null) return '– kbps';
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(1)} Mbps`;
  return `${Math.round(kbps)} kbps`;
}

export function formatRtt(ms: number | null): string {
  if (ms === null) return '–';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
