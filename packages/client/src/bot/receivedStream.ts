import type { TrackKind } from '@geosfu/common/protocol';
import { isKeyframePacket, readProbe } from './packetizer.js';
import {
  JitterEstimator,
  LatencyRecorder,
  type LatencySummary,
  SequenceTracker,
} from './receiveStats.js';

/** What the stream needs of a received RTP packet (werift's RtpPacket fits after a mapping). */
export interface ReceivedPacket {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  /** RTP header bytes (fixed header, CSRCs and extensions). */
  headerSize: number;
  payload: Buffer;
}

/** Per received stream (participant + kind). Field names are relied on by scripts. */
export interface ReceivedStreamStats {
  participant: string;
  kind: TrackKind;
  codec: string | null;
  /** Unique packets: a retransmitted sequence number counts once. */
  packets: number;
  /** Header + payload bytes of the unique packets. */
  bytes: number;
  /** `bytes` over the time from the first to the last packet. */
  bitrateKbps: number;
  keyframes: number;
  /** Expected (sequence range) minus unique packets received. */
  lost: number;
  expected: number;
  duplicates: number;
  /** Packets that filled a gap after later ones had arrived (NACK retransmission, reordering). */
  recovered: number;
  /** RFC 3550 interarrival jitter. */
  jitterMs: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; mean: number | null };
  latencySamples: number;
  /** Epoch milliseconds (performance.timeOrigin + performance.now()). */
  firstPacketAtMs: number | null;
  firstKeyframeAtMs: number | null;
  lastPacketAtMs: number | null;
  ssrc: number | null;
}

/**
 * What one stream received between two `takeInterval` calls (the first interval starts at the
 * stream's first packet). Summed over intervals, packets, bytes, lost and expected give the
 * cumulative values of `stats()`.
 */
export interface ReceivedStreamInterval {
  /** Length of the interval, ms. */
  intervalMs: number;
  /** Unique packets counted in the interval. */
  packets: number;
  /** Header + payload bytes of those packets. */
  bytes: number;
  /** `bytes` over `intervalMs`, kbit/s (0 for an empty interval). */
  bitrateKbps: number;
  /**
   * Change of the cumulative loss. Negative when retransmissions filled gaps of an earlier
   * interval, so that the sum over intervals stays the cumulative loss.
   */
  lost: number;
  /** Change of the cumulative expected count (the sequence range seen). */
  expected: number;
  /** One-way latency of the interval's packets that carried a probe. */
  latencyMs: { mean: number | null; p50: number | null; p95: number | null; max: number | null };
  latencySamples: number;
  /** RFC 3550 interarrival jitter at the end of the interval. */
  jitterMs: number;
  /**
   * The interval's latencies as counts per LATENCY_BUCKET_MS-wide bucket, keyed by the
   * bucket's lower edge in ms: intervals merge into exact percentiles of any window.
   */
  latencyHistogram: Record<string, number>;
}

/** Width of the latency histogram buckets of `takeInterval`, ms. */
export const LATENCY_BUCKET_MS = 0.5;

/** Bits of `onPacket`'s result. */
export const PACKET = Object.freeze({
  /** Counted (not a duplicate). */
  counted: 1,
  firstPacket: 2,
  /** The packet that identifies a new key frame. */
  keyframe: 4,
  firstKeyframe: 8,
});

export class ReceivedStream {
  readonly #seq = new SequenceTracker();
  readonly #jitter: JitterEstimator;
  readonly #latency = new LatencyRecorder();
  #ssrc: number | undefined;
  #codec: string | null = null;
  #bytes = 0;
  #keyframes = 0;
  #lastKeyframeTimestamp: number | undefined;
  #firstPacketAtMs: number | null = null;
  #firstKeyframeAtMs: number | null = null;
  #lastPacketAtMs: number | null = null;
  /** The interval `takeInterval` will report: its start and the cumulative values then. */
  #interval = { startMs: null as number | null, packets: 0, bytes: 0, lost: 0, expected: 0 };
  #intervalLatency = new LatencyRecorder();
  #intervalMaxLatency: number | null = null;
  #intervalHistogram = new Map<number, number>();

  constructor(
    readonly participant: string,
    readonly kind: TrackKind,
    clockRate: number,
  ) {
    this.#jitter = new JitterEstimator(clockRate);
  }

  /**
   * Accounts for one packet. `codec` is the lower-case codec name ('vp8', 'h264', 'opus'),
   * `arrivalMs` the receive time on the same clock as the sender's probe.
   */
  onPacket(packet: ReceivedPacket, codec: string, arrivalMs: number): number {
    if (this.#ssrc !== packet.ssrc) {
      if (this.#ssrc !== undefined) {
        // A new sender behind the same participant and kind (republish, re-subscribe): its
        // sequence numbers and timestamps start anywhere.
        this.#seq.restart();
        this.#jitter.restart();
        this.#lastKeyframeTimestamp = undefined;
      }
      this.#ssrc = packet.ssrc;
    }
    const result = this.#seq.push(packet.sequenceNumber);
    if (result === 'duplicate' || result === 'old') return 0;
    this.#codec = codec;
    this.#bytes += packet.headerSize + packet.payload.length;
    this.#lastPacketAtMs = arrivalMs;
    let outcome: number = PACKET.counted;
    if (this.#firstPacketAtMs === null) {
      this.#firstPacketAtMs = arrivalMs;
      outcome |= PACKET.firstPacket;
    }
    if (result === 'new') this.#jitter.update(packet.timestamp, arrivalMs);
    const probe = readProbe(packet.payload);
    if (probe) {
      const latencyMs = arrivalMs - probe.sendTimeMs;
      this.#latency.add(latencyMs);
      if (Number.isFinite(latencyMs)) {
        this.#intervalLatency.add(latencyMs);
        const bucket = Math.floor(latencyMs / LATENCY_BUCKET_MS) * LATENCY_BUCKET_MS;
        this.#intervalHistogram.set(bucket, (this.#intervalHistogram.get(bucket) ?? 0) + 1);
        if (this.#intervalMaxLatency === null || latencyMs > this.#intervalMaxLatency) {
          this.#intervalMaxLatency = latencyMs;
        }
      }
    }
    // A key frame spans many packets; count it once per RTP timestamp.
    if (
      packet.timestamp !== this.#lastKeyframeTimestamp &&
      isKeyframePacket(codec, packet.payload)
    ) {
      this.#lastKeyframeTimestamp = packet.timestamp;
      this.#keyframes++;
      outcome |= PACKET.keyframe;
      if (this.#firstKeyframeAtMs === null) {
        this.#firstKeyframeAtMs = arrivalMs;
        outcome |= PACKET.firstKeyframe;
      }
    }
    return outcome;
  }

  get packets(): number {
    return this.#seq.received;
  }

  get keyframes(): number {
    return this.#keyframes;
  }

  get firstKeyframeAtMs(): number | null {
    return this.#firstKeyframeAtMs;
  }

  latency(): LatencySummary {
    return this.#latency.summary();
  }

  /**
   * What arrived since the previous call (or since the first packet), and starts the next
   * interval at `nowMs` (epoch ms on the arrival clock, `nowMs()` of source.ts). Cumulative
   * `stats()` are not affected.
   */
  takeInterval(nowMs: number): ReceivedStreamInterval {
    const previous = this.#interval;
    const startMs = previous.startMs ?? this.#firstPacketAtMs ?? nowMs;
    const intervalMs = Math.max(0, nowMs - startMs);
    const packets = this.#seq.received;
    const lost = this.#seq.lost;
    const expected = this.#seq.expected;
    const latency = this.#intervalLatency.summary();
    const max = this.#intervalMaxLatency;
    this.#interval = { startMs: nowMs, packets, bytes: this.#bytes, lost, expected };
    this.#intervalLatency = new LatencyRecorder();
    this.#intervalMaxLatency = null;
    const histogram = this.#intervalHistogram;
    this.#intervalHistogram = new Map();
    const bytes = this.#bytes - previous.bytes;
    return {
      intervalMs: round(intervalMs, 3),
      packets: packets - previous.packets,
      bytes,
      // bits per millisecond are kilobits per second.
      bitrateKbps: intervalMs > 0 ? round((bytes * 8) / intervalMs, 2) : 0,
      lost: lost - previous.lost,
      expected: expected - previous.expected,
      latencyMs: {
        mean: roundOrNull(latency.mean),
        p50: roundOrNull(latency.p50),
        p95: roundOrNull(latency.p95),
        max: roundOrNull(max),
      },
      latencySamples: latency.samples,
      jitterMs: round(this.#jitter.jitterMs, 3),
      latencyHistogram: Object.fromEntries(
        [...histogram].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v]),
      ),
    };
  }

  stats(): ReceivedStreamStats {
    const latency = this.#latency.summary();
    const first = this.#firstPacketAtMs;
    const last = this.#lastPacketAtMs;
    const durationMs = first !== null && last !== null ? last - first : 0;
    return {
      participant: this.participant,
      kind: this.kind,
      codec: this.#codec,
      packets: this.#seq.received,
      bytes: this.#bytes,
      // bits per millisecond are kilobits per second.
      bitrateKbps: durationMs > 0 ? round((this.#bytes * 8) / durationMs, 2) : 0,
      keyframes: this.#keyframes,
      lost: this.#seq.lost,
      expected: this.#seq.expected,
      duplicates: this.#seq.duplicates,
      recovered: this.#seq.late,
      jitterMs: round(this.#jitter.jitterMs, 3),
      latencyMs: {
        p50: roundOrNull(latency.p50),
        p95: roundOrNull(latency.p95),
        p99: roundOrNull(latency.p99),
        mean: roundOrNull(latency.mean),
      },
      latencySamples: latency.samples,
      firstPacketAtMs: first,
      firstKeyframeAtMs: this.#firstKeyframeAtMs,
      lastPacketAtMs: last,
      ssrc: this.#ssrc ?? null,
    };
  }
}

export function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value, 3);
}
