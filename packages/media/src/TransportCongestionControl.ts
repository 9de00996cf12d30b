import type { Logger } from '@geosfu/common';
import {
  type RTCDtlsTransport,
  type RTCRtpSender,
  RTP_EXTENSION_URI,
  RtcpTransportLayerFeedback,
  RtpHeader,
  TransportWideCC,
} from 'werift';
import type { BandwidthBudget } from './BandwidthBudget.js';
import { BandwidthEstimator, type BandwidthEstimatorOptions } from './BandwidthEstimator.js';
import { Pacer } from './Pacer.js';
import { RetransmissionGate } from './RetransmissionGate.js';
import { transportFeedbackResults, unwrapReferenceTime } from './transportFeedback.js';
import { wireBytes } from './wireBytes.js';

/**
 * At most one probe this often: a probe costs the link a burst, and its result needs a RTT.
 * A probe that finds less than PROBE_SUCCESS of its rate doubles the gap, up to
 * MAX_PROBE_GAP_MS (behind a bottleneck, every probe's burst costs the media behind it a
 * queue, or a loss); one that finds it resets the gap and may be followed at once by a
 * higher one (libwebrtc's further probing): a lifted limit is found in a few round trips.
 */
const PROBE_GAP_MS = 1_500;
const MAX_PROBE_GAP_MS = 5_000;
const PROBE_SUCCESS = 0.8;
/** A probe cluster: this long, sent in ticks of PROBE_TICK_MS. */
const PROBE_DURATION_MS = 150;
const PROBE_TICK_MS = 10;
/** Padding per probe packet: the padding length is one byte (RFC 3550 section 5.1). */
const PROBE_PADDING_BYTES = 255;
/** A probe pads at least this share of its target, whatever media sends meanwhile. */
const MIN_PADDING_SHARE = 0.25;
/**
 * One probe of its own per transport, at this multiple of the estimate, this long after the
 * first feedback (libwebrtc probes at the start of a call, too): the estimate starts at a
 * guess, grows 8 %/s, and a layer allocator that waited for it would keep a subscriber on a
 * low layer for seconds. Not at once: the burst would compete with the first keyframe.
 */
const INITIAL_PROBE_FACTOR = 2;
const INITIAL_PROBE_DELAY_MS = 2_000;
/** werift's sender history (RTP_HISTORY_SIZE in rtpSender.js), which `rtpCache` is indexed by. */
const WERIFT_RTP_HISTORY = 128;

/** The parts of werift 0.25's RTCRtpSender this class reads and replaces (not public API). */
interface SenderInternals {
  senderBWE: { rtpPacketSent(info: unknown): void; receiveTWCC(feedback: unknown): void };
  rtpCache: ({ header: RtpHeader } | undefined)[];
  sequenceNumber?: number;
  timestamp?: number;
  seqOffset: number;
  headerExtensions: { id: number; uri: string }[];
  /** Smoothed round trip from the receiver's reports, seconds (undefined until one came). */
  rtt?: number;
}

/** werift's per-sender estimator, made to do nothing: ours sees every packet of the transport. */
const NO_SENDER_BWE: SenderInternals['senderBWE'] = Object.freeze({
  rtpPacketSent: () => {},
  receiveTWCC: () => {},
});

function internalsOf(sender: RTCRtpSender): SenderInternals | undefined {
  const s = sender as unknown as Partial<SenderInternals>;
  const bwe = s.senderBWE as Partial<SenderInternals['senderBWE']> | undefined;
  if (
    !bwe ||
    typeof bwe.rtpPacketSent !== 'function' ||
    typeof bwe.receiveTWCC !== 'function' ||
    !Array.isArray(s.rtpCache) ||
    typeof s.seqOffset !== 'number' ||
    !Array.isArray(s.headerExtensions)
  ) {
    return undefined;
  }
  return s as SenderInternals;
}

export interface TransportCongestionControlOptions {
  /** The subscriber's (bundled) DTLS transport: every packet toward the subscriber leaves here. */
  transport: RTCDtlsTransport;
  logger: Logger;
  estimator?: BandwidthEstimatorOptions;
}

/**
 * Transport-wide congestion control toward one subscriber
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01), the subscriber's `BandwidthBudget`.
 *
 * It sits on the transport, not on the senders, because werift 0.25's per-sender bookkeeping
 * is wrong for a bundle: the sender writes the transport sequence number, then reports it to
 * its own estimator after an await (another sender on the transport has incremented it
 * meanwhile), a NACK retransmission goes out with the cached header (its old transport
 * sequence number: the browser reports that number twice), and feedback reaches one sender
 * only, picked by the feedback's media SSRC. So this wraps the transport's `sendRtp`: every
 * packet (media, retransmission, probe) gets the next transport-wide sequence number written
 * into its transport-cc extension just before SRTP encrypts it, and is recorded in a
 * `BandwidthEstimator` with its size and send time; the transport's feedback goes to the same
 * estimator. werift's per-sender estimators are replaced by a no-op (`addSender`).
 *
 * Probing sends padding-only packets on a video sender's SSRC, right after the end of a
 * frame, as much as media leaves of the probe's target (media sent meanwhile is part of the
 * cluster): a browser counts them in its feedback and its jitter buffer skips them. Duplicates of
 * media packets would not do: the receiver's SRTP replay protection drops a packet whose
 * sequence number it has already seen before the feedback counts it (Chromium reported 49 of
 * 66 duplicates lost; none of 175 padding packets).
 */
export class TransportCongestionControl implements BandwidthBudget {
  readonly estimator: BandwidthEstimator;
  readonly pacer: Pacer<RtpHeader>;
  /** Which NACKed packets werift's senders may send again (RetransmissionGate). */
  readonly retransmissions = new RetransmissionGate();
  readonly #transport: RTCDtlsTransport;
  readonly #logger: Logger;
  readonly #originalSendRtp: RTCDtlsTransport['sendRtp'];
  readonly #wrappedSendRtp: RTCDtlsTransport['sendRtp'];
  readonly #offRtcp: () => void;
  readonly #senders = new Map<RTCRtpSender, SenderInternals>();
  /** Each sender's internals by its SSRC, for its round trip. */
  readonly #bySsrc = new Map<number, SenderInternals>();
  /** SSRCs of the audio senders: their packets skip the pacer's queue. */
  readonly #audioSsrcs = new Set<number>();
  /** The RTP sequence number of the last padding packet sent on each sender. */
  readonly #lastPadding = new Map<RTCRtpSender, number>();
  #sequenceNumber = 0;
  #extensionId: number | undefined;
  #referenceMs: number | undefined;
  #firstFeedbackMs: number | undefined;
  #initialProbeDone = false;
  #cluster = 0;
  /** The probe cluster being sent (0: none): media sent meanwhile is part of it. */
  #activeCluster = 0;
  #lastProbeMs = Number.NEGATIVE_INFINITY;
  #probeGapMs = PROBE_GAP_MS;
  /** The rate each recent probe cluster was sent at, until its result is known. */
  readonly #probeTargets = new Map<number, number>();
  #provenAt: number | undefined;
  /** What the last successful probe measured, until the estimate falls. */
  #provenBps: number | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #warned = false;
  #closed = false;

  constructor(options: TransportCongestionControlOptions) {
    this.#transport = options.transport;
    this.#logger = options.logger;
    this.estimator = new BandwidthEstimator(options.estimator);
    const transport = options.transport;
    const original = transport.sendRtp;
    this.#originalSendRtp = original;
    // Every packet goes through the pacer; stamping runs when it leaves, synchronously before
    // werift's sendRtp encrypts (also synchronously, before its first await), so the numbers
    // leave in the order they were written and the estimator sees the real send time.
    this.pacer = new Pacer<RtpHeader>({
      send: (payload, header) => {
        this.#stamp(payload, header, this.#activeCluster);
        return original.call(transport, payload, header);
      },
      wireBytes: (payload, header) => wireBytes(payload.length, header.serializeSize),
    });
    this.#wrappedSendRtp = (payload: Buffer, header: RtpHeader) => {
      const { ssrc, sequenceNumber } = header;
      if (
        this.retransmissions.isRetransmission(ssrc, sequenceNumber) &&
        this.retransmissions.admit(
          ssrc,
          sequenceNumber,
          wireBytes(payload.length, header.serializeSize),
          performance.now(),
          this.#rttMsOf(ssrc),
          this.estimateBps,
        ) !== 'resent'
      ) {
        return Promise.resolve(0);
      }
      return this.pacer.send(payload, header, this.#audioSsrcs.has(ssrc));
    };
    transport.sendRtp = this.#wrappedSendRtp;
    this.#offRtcp = transport.onRtcp.subscribe((rtcp) => {
      if (!(rtcp instanceof RtcpTransportLayerFeedback)) return;
      const feedback = rtcp.feedback;
      if (feedback instanceof TransportWideCC) this.#onFeedback(feedback);
    }).unSubscribe;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The estimate once the subscriber's first feedback arrived, bits/s. */
  get estimateBps(): number | undefined {
    return this.#firstFeedbackMs === undefined ? undefined : this.estimator.estimate;
  }

  get provenAt(): number | undefined {
    return this.#provenAt;
  }

  /**
   * What the subscriber acknowledges receiving now, or what the last successful probe measured
   * if the estimate has not fallen since. Not the highest acknowledged rate: from a receiver
   * that stamps its arrivals in bunches (a busy CPU), a 500 ms window reads up to half as much
   * again as went through, and a maximum of those kept the peaks.
   */
  get shownBps(): number | undefined {
    if (this.#firstFeedbackMs === undefined) return undefined;
    const acked = this.estimator.ackedBitrate;
    if (acked === undefined && this.#provenBps === undefined) return undefined;
    return Math.max(acked ?? 0, this.#provenBps ?? 0);
  }

  /** Probe clusters started so far. */
  get probes(): number {
    return this.#cluster;
  }

  /** The last transport-wide sequence number written (16 bits). */
  get sequenceNumber(): number {
    return this.#sequenceNumber;
  }

  /**
   * A sender on this transport: its werift estimator becomes a no-op, and a video sender may
   * carry probes. Returns false (and warns once) when werift's internals are not what this
   * was written against; the sender then keeps werift's estimator and is never probed on.
   */
  addSender(sender: RTCRtpSender): boolean {
    const internals = internalsOf(sender);
    if (!internals) {
      if (!this.#warned) {
        this.#warned = true;
        this.#logger.warn(
          'werift RTCRtpSender internals changed (senderBWE, rtpCache, seqOffset): probing toward subscribers is off; check TransportCongestionControl against this werift version',
        );
      }
      return false;
    }
    internals.senderBWE = NO_SENDER_BWE;
    this.#senders.set(sender, internals);
    this.#bySsrc.set(sender.ssrc, internals);
    if (sender.kind === 'audio') this.#audioSsrcs.add(sender.ssrc);
    return true;
  }

  removeSender(sender: RTCRtpSender): void {
    this.#senders.delete(sender);
    this.#bySsrc.delete(sender.ssrc);
    this.retransmissions.forget(sender.ssrc);
    this.#audioSsrcs.delete(sender.ssrc);
    this.#lastPadding.delete(sender);
  }

  /**
   * Sends a probe cluster at `targetBps` (padding, PROBE_DURATION_MS long) if it may: at most
   * one per PROBE_GAP_MS, none while the estimator sees overuse or when the target already
   * fits, and only on a transport with a video sender that has sent media.
   */
  probe(targetBps: number): void {
    if (this.#closed || this.#probeTimer || this.#transport.state !== 'connected') return;
    const now = performance.now();
    if (now - this.#lastProbeMs < this.#probeGapMs) return;
    // Nothing to find out when the target is within what the path has shown it carries.
    const known = Math.min(this.estimator.estimate, this.shownBps ?? Number.POSITIVE_INFINITY);
    if (this.estimator.signal === 'overuse' || targetBps <= known) return;
    // Media is waiting: a probe now would measure the queue, and delay it further.
    if (this.pacer.queuedPackets > 0) return;
    const sender = this.#probeSender();
    if (!sender) return;
    this.#lastProbeMs = now;
    const cluster = ++this.#cluster;
    this.#probeTargets.set(cluster, targetBps);
    // A cluster never reported (all of it lost with its feedback) is forgotten eventually.
    for (const old of this.#probeTargets.keys())
      if (old < cluster - 8) this.#probeTargets.delete(old);
    // The cluster is everything sent meanwhile, media too (as libwebrtc's): padding makes up
    // what media does not send of the target. Padding at the whole target on top of media
    // overshot a 600 kbit/s link by the media's rate on every probe, and its queue dropped
    // media with it.
    this.#activeCluster = cluster;
    const mediaBps = this.estimator.ackedBitrate ?? 0;
    const paddingBps = Math.max(MIN_PADDING_SHARE * targetBps, targetBps - mediaBps);
    const packetBytes = wireBytes(PROBE_PADDING_BYTES, 12 + 8);
    const total = Math.max(10, Math.ceil((paddingBps * PROBE_DURATION_MS) / 8_000 / packetBytes));
    let sent = 0;
    const started = now;
    const tick = () => {
      if (this.#closed || this.#transport.state !== 'connected') return this.#stopProbe();
      // What is due by the end of this tick: a tick that found a frame half sent (or ran late)
      // is made up in the next, or the cluster left below its target (562 of 816 kbit/s,
      // over 207 ms) and failed a probe the path would have passed.
      const elapsed = performance.now() - started + PROBE_TICK_MS;
      const due = Math.min(total, Math.ceil((elapsed / PROBE_DURATION_MS) * total));
      while (sent < due) {
        if (!this.#sendPadding(sender[0], sender[1], cluster)) break; // mid-frame: next tick
        sent++;
      }
      if (sent >= total || performance.now() - started > 3 * PROBE_DURATION_MS) this.#stopProbe();
    };
    this.#probeTimer = setInterval(tick, PROBE_TICK_MS);
    tick();
  }

  #stopProbe(): void {
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    const cluster = this.#activeCluster;
    this.#activeCluster = 0;
    if (cluster === 0) return;
    this.estimator.endCluster(cluster);
    this.#onProbeResult(performance.now());
  }

  #probeSender(): [RTCRtpSender, SenderInternals] | undefined {
    for (const [sender, internals] of this.#senders) {
      if (sender.kind === 'video' && sender.codec && internals.sequenceNumber !== undefined)
        return [sender, internals];
    }
    return undefined;
  }

  /**
   * One padding-only packet on the sender's SSRC with the next RTP sequence number; later media
   * is shifted by one through werift's own offset. Only after the last packet of a frame (the
   * marker): padding inside a frame's sequence range would leave the frame incomplete.
   */
  #sendPadding(sender: RTCRtpSender, internals: SenderInternals, cluster: number): boolean {
    const last = internals.sequenceNumber;
    const codec = sender.codec;
    const id = this.#extensionId;
    if (last === undefined || !codec || id === undefined) return false;
    const afterPadding = this.#lastPadding.get(sender) === last;
    if (!afterPadding && !internals.rtpCache[last % WERIFT_RTP_HISTORY]?.header.marker)
      return false;
    const sequenceNumber = (last + 1) & 0xffff;
    internals.sequenceNumber = sequenceNumber;
    internals.seqOffset = (internals.seqOffset + 1) & 0xffff;
    this.#lastPadding.set(sender, sequenceNumber);
    const payload = Buffer.alloc(PROBE_PADDING_BYTES);
    payload[PROBE_PADDING_BYTES - 1] = PROBE_PADDING_BYTES;
    const header = new RtpHeader({
      payloadType: codec.payloadType,
      sequenceNumber,
      timestamp: internals.timestamp ?? 0,
      ssrc: sender.ssrc,
      marker: false,
      padding: true,
      extensions: [{ id, payload: Buffer.alloc(2) }],
    });
    this.#stamp(payload, header, cluster);
    this.#originalSendRtp.call(this.#transport, payload, header).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'probe sendRtp failed');
    });
    return true;
  }

  /** The round trip werift's sender measured from the subscriber's receiver reports, ms. */
  #rttMsOf(ssrc: number): number | undefined {
    const seconds = this.#bySsrc.get(ssrc)?.rtt;
    return seconds === undefined ? undefined : seconds * 1000;
  }

  #extensionIdOf(): number | undefined {
    for (const internals of this.#senders.values()) {
      const ext = internals.headerExtensions.find(
        (e) => e.uri === RTP_EXTENSION_URI.transportWideCC,
      );
      if (ext) return ext.id;
    }
    return undefined;
  }

  #stamp(payload: Buffer, header: RtpHeader, cluster: number): void {
    this.#extensionId ??= this.#extensionIdOf();
    const id = this.#extensionId;
    if (id === undefined) return;
    const extension = header.extensions.find((e) => e.id === id);
    // Without the extension (not negotiated on this m-line) the browser cannot report it.
    if (!extension) return;
    const seq = (this.#sequenceNumber + 1) & 0xffff;
    this.#sequenceNumber = seq;
    // A new buffer: the old one may be shared (a cached packet's, or a publisher's extension
    // that werift copied in under the same id).
    const value = Buffer.allocUnsafe(2);
    value.writeUInt16BE(seq, 0);
    extension.payload = value;
    const bytes = wireBytes(payload.length, header.serializeSize);
    this.estimator.onPacketSent(seq, bytes, performance.now(), cluster);
  }

  #onFeedback(feedback: TransportWideCC): void {
    this.#referenceMs = unwrapReferenceTime(this.#referenceMs, feedback.referenceTime);
    const results = transportFeedbackResults(feedback, this.#referenceMs);
    if (results.length === 0) return;
    const now = performance.now();
    const before = this.estimator.estimate;
    this.estimator.onFeedback(results, now);
    // A queue or a loss: what a probe showed before may not hold now.
    if (this.estimator.estimate < before) this.#provenBps = undefined;
    this.#onProbeResult(now);
    this.#firstFeedbackMs ??= now;
    this.pacer.rateBps = this.estimator.estimate;
    if (!this.#initialProbeDone && now - this.#firstFeedbackMs >= INITIAL_PROBE_DELAY_MS) {
      this.probe(INITIAL_PROBE_FACTOR * this.estimator.estimate);
      this.#initialProbeDone = this.#cluster > 0;
    }
  }

  /**
   * A probe's result, once: success lets the next probe go at once, failure backs off. A
   * cluster that left below its target (media sent less than it had, frames held the padding
   * back) and arrived as fast as it left proved what it carried, not that the target fails:
   * the next probe waits the usual gap, no longer.
   */
  #onProbeResult(now: number): void {
    const result = this.estimator.lastProbe;
    const target = result && this.#probeTargets.get(result.cluster);
    if (!result || target === undefined) return;
    this.#probeTargets.delete(result.cluster);
    if (result.bps >= PROBE_SUCCESS * target) {
      this.#probeGapMs = PROBE_GAP_MS;
      this.#lastProbeMs = Number.NEGATIVE_INFINITY;
      this.#provenAt = now;
      this.#provenBps = result.bps;
    } else if (result.carried) {
      this.#probeGapMs = PROBE_GAP_MS;
      this.#provenBps = Math.max(result.bps, this.#provenBps ?? 0);
    } else {
      this.#probeGapMs = Math.min(MAX_PROBE_GAP_MS, 2 * this.#probeGapMs);
    }
  }

  /** Restores the transport's sendRtp and stops listening; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopProbe();
    this.#offRtcp();
    this.pacer.close();
    if (this.#transport.sendRtp === this.#wrappedSendRtp)
      this.#transport.sendRtp = this.#originalSendRtp;
    this.#senders.clear();
    this.#lastPadding.clear();
  }
}
