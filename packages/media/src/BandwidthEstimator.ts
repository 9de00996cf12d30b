/**
 * Send-side bandwidth estimation toward one subscriber from its transport-wide congestion
 * control feedback (draft-holmer-rmcat-transport-wide-cc-extensions): the node writes a
 * transport-wide sequence number on every packet it sends on the subscriber's transport,
 * remembers when it sent it and how big it was, and the browser reports when each arrived.
 * Two estimates, the lower one wins, as in Google Congestion Control
 * (draft-ietf-rmcat-gcc-02):
 *
 * - delay-based: packets are grouped by send time (5 ms bursts, and what arrived in one burst
 *   however it was sent); the growth of one-way delay between groups is smoothed and its
 *   trend fitted by least squares over the last 20 groups. A trend above an adaptive
 *   threshold is overuse (a queue is building at the bottleneck): the rate drops to 85 % of
 *   what was received meanwhile. Otherwise the rate grows, multiplicatively (8 %/s) far from
 *   the last overuse and additively near it, never past 1.5 times what the receiver
 *   acknowledged (more has not been tried);
 * - loss-based: more than 10 % loss over a report cuts the rate by half the loss, but not
 *   below the acknowledged rate; under 2 % lets it grow again, at once to the acknowledged
 *   rate if that is higher (as the delay-based rate does while there is no overuse). A shaper with a short queue (a
 *   token bucket) drops before delay grows.
 *
 * - probing: 8 %/s takes 18 s from 600 kbit/s to 2.5 Mbit/s. To find out sooner whether more
 *   fits, the sender sends a short burst (a probe cluster, padding if it has nothing else) at
 *   a higher rate; if the receiver got it at that rate, the estimate jumps to it (as libwebrtc's
 *   ProbeBitrateEstimator does); if it arrived slower, the arrival rate is the capacity.
 *
 * What it needs from the caller: `onPacketSent` for every packet (padding too, probes with
 * their cluster id), and `onFeedback` with the results of each feedback packet. No timers:
 * time comes in the calls.
 */

/** One packet's fate from a feedback packet (werift's `TransportWideCC.packetResults`). */
export interface PacketFeedback {
  readonly sequenceNumber: number;
  readonly received: boolean;
  /** Arrival time on the receiver's clock, ms (only differences matter). */
  readonly receivedAtMs: number;
}

export type RateState = 'increase' | 'hold' | 'decrease';

export interface BandwidthEstimatorOptions {
  /** Where the estimate starts, bits/s. */
  initialBps?: number;
  minBps?: number;
  maxBps?: number;
}

const HISTORY = 4096;
const GROUP_SPAN_MS = 5;
/**
 * A packet that arrives within this of the group's last one, sooner after it than it was sent
 * (its own delay shrank), belongs to the group however late it was sent: it waited somewhere
 * with the group and was delivered in one burst (libwebrtc's BelongsToBurst). A receiver that
 * did not run for a while (a busy CPU, a Wi-Fi radio asleep) stamps what queued meanwhile in
 * one burst; as separate groups, the first one's delay jump read as a queue building and cut
 * the estimate toward a loopback subscriber to 0.85 times what it received, every few seconds.
 * As one group it is compared by its last packet, which waited for nothing.
 */
const BURST_DELTA_MS = 5;
/** A burst group spans at most this much arrival time. */
const MAX_BURST_MS = 100;
const TREND_WINDOW = 20;
const SMOOTHING = 0.9;
const TREND_GAIN = 4;
const OVERUSE_TIME_MS = 10;
const K_UP = 0.0087;
const K_DOWN = 0.039;
const BETA = 0.85;
const ACKED_WINDOW_MS = 500;
const LOSS_HIGH = 0.1;
const LOSS_LOW = 0.02;
/** Loss-based cuts at most this often (300 ms plus a typical RTT). */
const LOSS_DECREASE_GAP_MS = 500;
/** Loss is judged over at least this many packets. */
const LOSS_MIN_PACKETS = 20;

/** A probe cluster's packets needed for a result, and how far apart they may arrive. */
const PROBE_MIN_PACKETS = 5;
/** A cluster that arrived more than this many times faster than it was sent measured nothing. */
const PROBE_MAX_RECEIVE_RATIO = 2;

/** What a probe cluster measured: the path's capacity, bits/s (0: too few packets arrived). */
export interface ProbeResult {
  readonly cluster: number;
  readonly bps: number;
  /** The rate the cluster left at, bits/s (0 when it measured nothing). */
  readonly sentBps: number;
  /**
   * It arrived as fast as it left: the path carried all of it, and `bps` is what was sent, a
   * floor of the capacity rather than the capacity.
   */
  readonly carried: boolean;
}

interface Cluster {
  packets: number;
  bytes: number;
  /** The size of the last packet sent: it is not part of the send rate. */
  lastBytes: number;
  firstSendMs: number;
  lastSendMs: number;
  /** The sender said the burst is over (`endCluster`): no packet joins it after. */
  ended: boolean;
  /** Arrival time and size of each packet received, in the order they were reported. */
  arrivals: { atMs: number; bytes: number }[];
  reported: number;
}

interface Group {
  firstSendMs: number;
  lastSendMs: number;
  firstRecvMs: number;
  lastRecvMs: number;
}

const groupOf = (sentMs: number, recvMs: number): Group => ({
  firstSendMs: sentMs,
  lastSendMs: sentMs,
  firstRecvMs: recvMs,
  lastRecvMs: recvMs,
});

export class BandwidthEstimator {
  readonly #minBps: number;
  readonly #maxBps: number;
  readonly #sentSeq = new Int32Array(HISTORY).fill(-1);
  readonly #sentBytes = new Uint32Array(HISTORY);
  readonly #sentAt = new Float64Array(HISTORY);
  /** Probe cluster of each remembered packet (0: none). */
  readonly #sentCluster = new Uint32Array(HISTORY);
  readonly #clusters = new Map<number, Cluster>();
  #delayBased: number;
  #lossBased: number;
  #state: RateState = 'increase';
  #lastUpdateMs: number | undefined;
  /** The acknowledged rate when the last overuse was seen (an estimate of the link capacity). */
  #capacityBps: number | undefined;
  #capacityVar = 0.4;
  // Trendline
  #group: Group | undefined;
  #previousGroup: Group | undefined;
  #firstArrivalMs: number | undefined;
  #accumulated = 0;
  #smoothed = 0;
  readonly #trend: { x: number; y: number }[] = [];
  #deltas = 0;
  #threshold = 12.5;
  #lastThresholdUpdateMs: number | undefined;
  #overuseSinceMs: number | undefined;
  #previousModifiedTrend = 0;
  #signal: 'normal' | 'overuse' | 'underuse' = 'normal';
  // Acknowledged bitrate: (arrival time, bytes) over the last ACKED_WINDOW_MS.
  readonly #acked: { at: number; bytes: number }[] = [];
  #ackedBytes = 0;
  #ackedBps: number | undefined;
  // Loss
  #lossPackets = 0;
  #lossLost = 0;
  #lastLossUpdateMs: number | undefined;
  #lastLossDecreaseMs = Number.NEGATIVE_INFINITY;
  #lastProbe: ProbeResult | undefined;

  constructor(options: BandwidthEstimatorOptions = {}) {
    this.#minBps = options.minBps ?? 50_000;
    this.#maxBps = options.maxBps ?? 20_000_000;
    const initial = options.initialBps ?? 1_000_000;
    this.#delayBased = initial;
    this.#lossBased = initial;
  }

  /** The estimate, bits/s: the lower of the delay- and loss-based ones. */
  get estimate(): number {
    return Math.max(this.#minBps, Math.min(this.#delayBased, this.#lossBased, this.#maxBps));
  }

  /** What the receiver acknowledged over the last half second, bits/s (undefined before). */
  get ackedBitrate(): number | undefined {
    return this.#ackedBps;
  }

  get state(): RateState {
    return this.#state;
  }

  /** The last ended probe cluster whose packets were all reported, and what it measured. */
  get lastProbe(): ProbeResult | undefined {
    return this.#lastProbe;
  }

  /** The delay detector's last verdict. */
  get signal(): 'normal' | 'overuse' | 'underuse' {
    return this.#signal;
  }

  /**
   * Every packet sent on the transport, with its transport-wide sequence number; a packet of
   * a probe cluster carries the cluster's id (a positive integer, new for each burst).
   */
  onPacketSent(sequenceNumber: number, bytes: number, sentAtMs: number, cluster = 0): void {
    const i = sequenceNumber % HISTORY;
    this.#sentSeq[i] = sequenceNumber;
    this.#sentBytes[i] = bytes;
    this.#sentAt[i] = sentAtMs;
    this.#sentCluster[i] = cluster;
    if (cluster === 0) return;
    const c = this.#clusters.get(cluster);
    if (!c) {
      this.#clusters.set(cluster, {
        packets: 1,
        bytes,
        lastBytes: bytes,
        firstSendMs: sentAtMs,
        lastSendMs: sentAtMs,
        ended: false,
        arrivals: [],
        reported: 0,
      });
      return;
    }
    c.packets++;
    c.bytes += bytes;
    c.lastBytes = bytes;
    c.lastSendMs = sentAtMs;
  }

  /**
   * The probe cluster's burst is over. Until then it is not judged, however much of it was
   * reported: feedback often covers a burst's first packets while the rest are still being
   * sent, and its first 4 or 10 packets read as a failure (too few) or as a rate no link has
   * (10 packets in 11 ms "proved" 2.5 Mbit/s behind a shaper).
   */
  endCluster(cluster: number): void {
    const c = this.#clusters.get(cluster);
    if (!c) return;
    c.ended = true;
    if (c.reported >= c.packets) this.#judge(cluster, c);
  }

  /** One feedback packet's results, in sequence order, at local time `nowMs`. */
  onFeedback(results: readonly PacketFeedback[], nowMs: number): void {
    let lost = 0;
    let known = 0;
    for (const r of results) {
      const i = r.sequenceNumber % HISTORY;
      if (this.#sentSeq[i] !== r.sequenceNumber) continue; // not ours, or too old
      known++;
      const cluster = this.#sentCluster[i] ?? 0;
      if (cluster !== 0) this.#onProbePacket(cluster, r, this.#sentBytes[i] ?? 0);
      if (!r.received) {
        lost++;
        continue;
      }
      this.#onArrival(this.#sentAt[i] ?? 0, r.receivedAtMs, this.#sentBytes[i] ?? 0, nowMs);
    }
    if (known === 0) return;
    this.#lossPackets += known;
    this.#lossLost += lost;
    this.#updateLoss(nowMs);
    this.#updateRate(nowMs);
  }

  /** A probe packet's fate; when its whole cluster is reported, the result. */
  #onProbePacket(id: number, r: PacketFeedback, bytes: number): void {
    const c = this.#clusters.get(id);
    if (!c) return;
    c.reported++;
    if (r.received) c.arrivals.push({ atMs: r.receivedAtMs, bytes });
    if (c.ended && c.reported >= c.packets) this.#judge(id, c);
  }

  /** What an ended cluster, all of it reported, measured: `lastProbe`. */
  #judge(id: number, c: Cluster): void {
    this.#clusters.delete(id);
    // Old clusters whose packets were never reported go too.
    for (const [other, o] of this.#clusters)
      if (o.firstSendMs < c.firstSendMs) this.#clusters.delete(other);
    const received = c.arrivals.length;
    // Until it measures something, the cluster failed: too much of it lost, or too little.
    this.#lastProbe = { cluster: id, bps: 0, sentBps: 0, carried: false };
    if (received < PROBE_MIN_PACKETS || received < c.packets * 0.8) return;
    const sendMs = c.lastSendMs - c.firstSendMs;
    if (sendMs <= 0) return;
    // The last packet's size is not part of a rate: it arrived at the end of the window.
    const sendBps = ((c.bytes - c.lastBytes) * 8 * 1000) / sendMs;
    // The arrival rate of the cluster's second half only: its head can ride a token bucket's
    // burst (a tbf, an ISP's shaper) and arrive at line rate, which read 863 kbit/s on a
    // 600 kbit/s link; by the second half the bucket is empty and packets arrive at the rate
    // it drains. On a path without a bucket both halves arrive at the rate they were sent.
    const arrivals = c.arrivals.sort((a, b) => a.atMs - b.atMs);
    const tail = arrivals.slice(Math.floor(received / 2));
    const first = tail[0];
    const last = tail[tail.length - 1];
    if (!first || !last || tail.length < 3) return;
    const recvMs = last.atMs - first.atMs;
    if (recvMs <= 0) return;
    let tailBytes = 0;
    for (const a of tail) tailBytes += a.bytes;
    // Nor more than the whole cluster's arrival rate: a receiver that stalled during the
    // second half stamps it in a bunch (Chromium starved for CPU did), which a short tail
    // reads as up to twice the path's rate, and a 400 kbit/s link "proved" 800 kbit/s.
    const head = arrivals[0];
    const wholeMs = head ? last.atMs - head.atMs : 0;
    let wholeBytes = 0;
    for (const a of arrivals) wholeBytes += a.bytes;
    const wholeBps =
      wholeMs > 0 ? ((wholeBytes - last.bytes) * 8 * 1000) / wholeMs : Number.POSITIVE_INFINITY;
    const recvBps = Math.min(((tailBytes - last.bytes) * 8 * 1000) / recvMs, wholeBps);
    // Arriving much faster than sent is no measurement: the receiver stamped a bunch of
    // packets at once (a busy receiver reading its socket late; Chromium starved for CPU did,
    // and a 400 kbit/s tbf link "proved" 1.6 Mbit/s), or a queue drained. libwebrtc's
    // ProbeBitrateEstimator drops such clusters too (kMaxValidRatio).
    if (recvBps > PROBE_MAX_RECEIVE_RATIO * sendBps) return;
    // Arriving clearly slower than sent: the path's capacity is the arrival rate.
    const carried = recvBps >= 0.9 * sendBps;
    const result = carried ? Math.min(sendBps, recvBps) : recvBps;
    this.#lastProbe = { cluster: id, bps: result, sentBps: sendBps, carried };
    if (result > this.#delayBased && this.#signal !== 'overuse') {
      this.#delayBased = Math.min(this.#maxBps, result);
      this.#lossBased = Math.max(this.#lossBased, this.#delayBased);
    }
  }

  #onArrival(sentMs: number, recvMs: number, bytes: number, nowMs: number): void {
    // Acknowledged bitrate over a window of arrival times.
    this.#acked.push({ at: recvMs, bytes });
    this.#ackedBytes += bytes;
    while (this.#acked.length > 0 && recvMs - (this.#acked[0]?.at ?? recvMs) > ACKED_WINDOW_MS) {
      this.#ackedBytes -= this.#acked.shift()?.bytes ?? 0;
    }
    const span = recvMs - (this.#acked[0]?.at ?? recvMs);
    if (span >= ACKED_WINDOW_MS / 2) this.#ackedBps = (this.#ackedBytes * 8 * 1000) / span;
    // Groups of packets sent within GROUP_SPAN_MS of each other.
    const group = this.#group;
    if (!group) {
      this.#group = groupOf(sentMs, recvMs);
      return;
    }
    if (sentMs < group.firstSendMs) return; // reordered from an older group
    const arrivalDelta = recvMs - group.lastRecvMs;
    const burst =
      arrivalDelta - (sentMs - group.lastSendMs) < 0 &&
      arrivalDelta <= BURST_DELTA_MS &&
      recvMs - group.firstRecvMs < MAX_BURST_MS;
    if (sentMs - group.firstSendMs <= GROUP_SPAN_MS || burst) {
      group.lastSendMs = Math.max(group.lastSendMs, sentMs);
      group.lastRecvMs = Math.max(group.lastRecvMs, recvMs);
      return;
    }
    const previous = this.#previousGroup;
    if (previous) {
      const delta =
        group.lastRecvMs - previous.lastRecvMs - (group.lastSendMs - previous.lastSendMs);
      this.#onDelayDelta(delta, group.lastRecvMs, nowMs);
    }
    this.#previousGroup = group;
    this.#group = groupOf(sentMs, recvMs);
  }

  /** The trendline filter and the overuse detector, for one inter-group delay variation. */
  #onDelayDelta(delta: number, arrivalMs: number, nowMs: number): void {
    this.#firstArrivalMs ??= arrivalMs;
    this.#accumulated += delta;
    this.#smoothed = SMOOTHING * this.#smoothed + (1 - SMOOTHING) * this.#accumulated;
    this.#trend.push({ x: arrivalMs - this.#firstArrivalMs, y: this.#smoothed });
    if (this.#trend.length > TREND_WINDOW) this.#trend.shift();
    this.#deltas = Math.min(this.#deltas + 1, 60);
    if (this.#trend.length < TREND_WINDOW) return;
    const modified = slope(this.#trend) * this.#deltas * TREND_GAIN;
    this.#detect(modified, nowMs);
  }

  #detect(modified: number, nowMs: number): void {
    const threshold = this.#threshold;
    if (modified > threshold) {
      this.#overuseSinceMs ??= nowMs;
      if (
        nowMs - this.#overuseSinceMs >= OVERUSE_TIME_MS &&
        modified >= this.#previousModifiedTrend
      )
        this.#signal = 'overuse';
    } else {
      this.#overuseSinceMs = undefined;
      this.#signal = modified < -threshold ? 'underuse' : 'normal';
    }
    this.#previousModifiedTrend = modified;
    // The threshold follows the trend slowly (faster down than up), so that a flow competing
    // with others is not starved by a fixed threshold (gcc-02 section 5.4).
    const last = this.#lastThresholdUpdateMs ?? nowMs;
    this.#lastThresholdUpdateMs = nowMs;
    const magnitude = Math.abs(modified);
    if (magnitude > threshold + 15) return;
    const k = magnitude < threshold ? K_DOWN : K_UP;
    const dt = Math.min(nowMs - last, 100);
    this.#threshold = Math.min(600, Math.max(6, threshold + k * (magnitude - threshold) * dt));
  }

  #updateLoss(nowMs: number): void {
    if (this.#lossPackets < LOSS_MIN_PACKETS) return;
    const loss = this.#lossLost / this.#lossPackets;
    const last = this.#lastLossUpdateMs ?? nowMs;
    const dt = Math.max(0, nowMs - last);
    this.#lastLossUpdateMs = nowMs;
    this.#lossPackets = 0;
    this.#lossLost = 0;
    if (loss > LOSS_HIGH) {
      // Once per response time: the loss of the packets sent before the last cut took effect
      // must not cut again (libwebrtc waits 300 ms plus the RTT).
      if (nowMs - this.#lastLossDecreaseMs < LOSS_DECREASE_GAP_MS) return;
      this.#lastLossDecreaseMs = nowMs;
      // Never below what the receiver got meanwhile: that much demonstrably fits. A sender
      // that does not (or cannot yet) slow down keeps losing a fixed share, and the cut
      // alone would take the estimate to the minimum in a few seconds (seen toward Chromium
      // behind a 600 kbit/s tbf with 1.8 Mbit/s of video sent into it: 50 kbit/s).
      const cut = this.estimate * (1 - 0.5 * loss);
      this.#lossBased = Math.max(this.#minBps, cut, this.#ackedBps ?? 0);
    } else if (loss < LOSS_LOW) {
      // Little loss: grow again, from where loss put it (not straight back to the delay-based
      // rate, which a shaper that drops instead of queueing never holds back).
      this.#lossBased = Math.min(
        this.#maxBps,
        Math.max(this.#lossBased * 1.08 ** (dt / 1000), this.#ackedBps ?? 0),
      );
    }
  }

  #updateRate(nowMs: number): void {
    const last = this.#lastUpdateMs ?? nowMs;
    const dt = Math.min(Math.max(0, nowMs - last), 1000);
    this.#lastUpdateMs = nowMs;
    const acked = this.#ackedBps;
    if (this.#signal === 'overuse') {
      if (this.#state !== 'decrease' && acked !== undefined) {
        const target = BETA * acked;
        if (target < this.#delayBased) this.#delayBased = Math.max(this.#minBps, target);
        this.#updateCapacity(acked);
      }
      this.#state = 'decrease';
      return;
    }
    if (this.#signal === 'underuse') {
      // Queues are draining: hold until they are empty, then probe again.
      this.#state = 'hold';
      return;
    }
    if (this.#state === 'decrease') {
      this.#state = 'hold';
      return;
    }
    this.#state = 'increase';
    const rate = this.#delayBased;
    const capacity = this.#capacityBps;
    // The capacity estimate's deviation, as libwebrtc keeps it: sqrt(var * capacity in kbit/s).
    const deviation =
      capacity === undefined ? 0 : Math.sqrt(this.#capacityVar * (capacity / 1000)) * 1000;
    if (capacity !== undefined && rate > capacity + 3 * deviation) {
      // Well past the last capacity without overuse: the path changed; forget it.
      this.#capacityBps = undefined;
    }
    const near =
      this.#capacityBps !== undefined && Math.abs(rate - (capacity ?? 0)) < 3 * deviation;
    let next = near
      ? rate + Math.max(1_000, 1_200 * 8) * (dt / 200) // about a packet per response time
      : rate * 1.08 ** (dt / 1000);
    // Never past what was tried: 1.5 times the acknowledged rate (gcc-02 section 5.5). Never
    // below what the receiver got without overuse either: that much demonstrably fits (a
    // shaper lifted while the sender kept sending: 8 %/s would take 10 s to catch up).
    if (acked !== undefined)
      next = Math.max(acked, Math.min(next, Math.max(rate, 1.5 * acked + 10_000)));
    this.#delayBased = Math.min(this.#maxBps, next);
  }

  #updateCapacity(acked: number): void {
    const capacity = this.#capacityBps;
    if (capacity === undefined) {
      this.#capacityBps = acked;
      return;
    }
    // Kept in kbit/s, as libwebrtc's AimdRateControl does: the variance normalised by the
    // capacity, so the deviation is sqrt(var * capacity).
    const kbps = capacity / 1000;
    const error = acked / 1000 - kbps;
    const deviation = Math.sqrt(this.#capacityVar * kbps);
    // A capacity far from the old one starts the estimate of it anew.
    if (Math.abs(error) > 3 * deviation) {
      this.#capacityBps = acked;
      return;
    }
    this.#capacityBps = 0.95 * capacity + 0.05 * acked;
    const normalised = (error * error) / Math.max(1, kbps);
    this.#capacityVar = Math.min(2.5, Math.max(0.4, 0.95 * this.#capacityVar + 0.05 * normalised));
  }
}

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / points.length;
  const my = sy / points.length;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
