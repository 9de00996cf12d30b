/**
 * Transport-wide congestion control feedback toward a publisher: records when each packet
 * carrying a transport-wide sequence number arrived on the publisher's transport and reports
 * it back every `intervalMs`, so that the publisher's send-side estimator (Chrome's GoogCC)
 * can measure queueing delay and loss on its uplink and grow its estimate as the path allows.
 *
 * It replaces werift's ReceiverTWCC (silenced by `silenceWeriftTwcc`), whose feedback made
 * Chrome's estimate collapse to ~100 kbit/s (WERIFT-NOTES pitfall 3; docs/ARCHITECTURE.md,
 * "Congestion feedback toward publishers", lists why).
 */
import { performance } from 'node:perf_hooks';
import type { RtpPacket } from 'werift';
import {
  deltaTicks,
  encodeTransportFeedback,
  MAX_DELTA_TICKS,
  MAX_STATUS_COUNT,
  MIN_DELTA_TICKS,
} from './encodeTransportFeedback.js';

/** The header extension the publisher writes its transport-wide sequence number in. */
export const TRANSPORT_CC_URI =
  'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

/** What the feedback needs of a werift RTCDtlsTransport. */
export interface FeedbackTransport {
  onRtp: { subscribe(listener: (rtp: RtpPacket) => void): { unSubscribe(): void } };
  sendRtcp(packets: { serialize(): Buffer }[]): Promise<unknown>;
}

export interface TwccFeedbackOptions {
  transport: FeedbackTransport;
  /** The transport's negotiated extension ids (werift's `pc.extIdUriMap`, read live). */
  extensionUris: Readonly<Record<number, string>>;
  /** SSRC the feedback is sent from. */
  senderSsrc: number;
  /** Default 100 ms: libwebrtc's default feedback interval. */
  intervalMs?: number;
  /** Called after each feedback packet is handed to the transport. */
  onSent?: () => void;
  /** Called when a send fails (the transport closing, typically). */
  onError?: (error: unknown) => void;
}

/** libwebrtc's default feedback interval. */
const DEFAULT_INTERVAL_MS = 100;
/**
 * Received packets per feedback: at most 2 bytes of delta each plus ~2 bytes of status per 7,
 * this keeps a feedback under ~950 bytes, one unfragmented datagram.
 */
const MAX_RECEIVED_PER_FEEDBACK = 400;
/** Reported arrivals are kept this long, so that a late packet can be reported with them. */
const HISTORY_US = 500_000;
/**
 * A sequence number this far from what we have is a new sequence (a restarted sender), not
 * loss or reordering: start over from it.
 */
const RESET_DISTANCE = 0x1000;

interface Arrival {
  /** Unwrapped transport-wide sequence number. */
  seq: number;
  /** Arrival time, microseconds. */
  us: number;
}

export class TwccFeedback {
  readonly #transport: FeedbackTransport;
  readonly #uris: Readonly<Record<number, string>>;
  readonly #senderSsrc: number;
  readonly #onSent: (() => void) | undefined;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout | undefined;
  /** Arrivals in sequence order, reported ones kept for HISTORY_US. */
  #arrivals: Arrival[] = [];
  /** The first sequence number not reported yet. */
  #windowStart: number | undefined;
  /** The highest unwrapped sequence number seen. */
  #highest: number | undefined;
  #mediaSsrc = 0;
  #feedbackCount = 0;
  #closed = false;

  constructor(options: TwccFeedbackOptions & { manual?: boolean }) {
    this.#transport = options.transport;
    this.#uris = options.extensionUris;
    this.#senderSsrc = options.senderSsrc;
    this.#onSent = options.onSent;
    this.#onError = options.onError;
    this.#unsubscribe = options.transport.onRtp.subscribe((rtp) => this.#onRtp(rtp)).unSubscribe;
    // `manual` (tests): the caller drives flush() with its own clock.
    this.#timer = options.manual
      ? undefined
      : setInterval(
          () => this.flush(performance.now() * 1000),
          options.intervalMs ?? DEFAULT_INTERVAL_MS,
        );
  }

  #onRtp(rtp: RtpPacket): void {
    const now = performance.now() * 1000;
    for (const extension of rtp.header.extensions) {
      if (this.#uris[extension.id] !== TRANSPORT_CC_URI || extension.payload.length < 2) continue;
      this.record(extension.payload.readUInt16BE(0), rtp.header.ssrc, now);
      return;
    }
  }

  /** Records the arrival of transport-wide sequence number `seq` (16 bits) at `us`. */
  record(seq: number, ssrc: number, us: number): void {
    if (this.#closed) return;
    const highest = this.#highest;
    const unwrapped = this.#unwrap(seq);
    this.#mediaSsrc = ssrc;
    const oldest = this.#arrivals[0]?.seq;
    if (highest !== undefined && this.#windowStart !== undefined) {
      if (unwrapped > highest + RESET_DISTANCE || unwrapped < this.#windowStart - RESET_DISTANCE) {
        this.#arrivals = [];
        this.#windowStart = undefined;
        this.#highest = unwrapped;
      } else if (oldest !== undefined && unwrapped < oldest) {
        return; // older than what we still hold: reporting it would report its neighbours lost
      }
    }
    if (!this.#insert({ seq: unwrapped, us })) return; // a duplicate keeps its first arrival
    // A late packet below the window reopens it: the next feedback reports it (with the
    // packets around it again, from history), as libwebrtc does.
    if (this.#windowStart === undefined || unwrapped < this.#windowStart) {
      this.#windowStart = unwrapped;
    }
  }

  /** Sends feedback for everything recorded since the last one. */
  flush(nowUs: number): void {
    if (this.#closed || this.#windowStart === undefined || this.#highest === undefined) return;
    const first = this.#indexOf(this.#windowStart);
    const end = this.#highest;
    if (first >= this.#arrivals.length) return;
    let base = this.#windowStart;
    let arrivals: (number | undefined)[] = [];
    let received = 0;
    let previous: number | undefined;
    const send = () => {
      this.#send(base, arrivals);
      base += arrivals.length;
      arrivals = [];
      received = 0;
      previous = undefined;
    };
    for (let i = first; i < this.#arrivals.length; i++) {
      const arrival = this.#arrivals[i] as Arrival;
      const ticks = deltaTicks(arrival.us);
      const delta = previous === undefined ? 0 : ticks - previous;
      if (
        received > 0 &&
        (received >= MAX_RECEIVED_PER_FEEDBACK ||
          arrival.seq - base + 1 > MAX_STATUS_COUNT ||
          delta < MIN_DELTA_TICKS ||
          delta > MAX_DELTA_TICKS)
      ) {
        send(); // the next feedback starts right after the last status of this one
      }
      // Packets missing before this one: statuses without a delta ("not received").
      while (base + arrivals.length < arrival.seq) arrivals.push(undefined);
      arrivals.push(arrival.us);
      received++;
      previous = ticks;
    }
    if (received > 0) send();
    this.#windowStart = end + 1;
    this.#prune(nowUs);
  }

  #send(base: number, arrivals: (number | undefined)[]): void {
    const packet = encodeTransportFeedback({
      senderSsrc: this.#senderSsrc,
      mediaSsrc: this.#mediaSsrc,
      baseSequence: base & 0xffff,
      feedbackCount: this.#feedbackCount,
      arrivals,
    });
    this.#feedbackCount = (this.#feedbackCount + 1) & 0xff;
    this.#transport
      .sendRtcp([{ serialize: () => packet }])
      .then(() => this.#onSent?.())
      .catch((error: unknown) => this.#onError?.(error));
  }

  /** Serial-number arithmetic (RFC 1982) around the highest sequence number seen. */
  #unwrap(seq: number): number {
    const highest = this.#highest;
    if (highest === undefined) {
      this.#highest = seq;
      return seq;
    }
    const diff = ((seq - (highest & 0xffff) + 0x18000) & 0xffff) - 0x8000;
    const unwrapped = highest + diff;
    if (unwrapped > highest) this.#highest = unwrapped;
    return unwrapped;
  }

  /** Inserts in sequence order (nearly always at the end); false for a duplicate. */
  #insert(arrival: Arrival): boolean {
    let i = this.#arrivals.length;
    while (i > 0 && (this.#arrivals[i - 1] as Arrival).seq > arrival.seq) i--;
    if (i > 0 && (this.#arrivals[i - 1] as Arrival).seq === arrival.seq) return false;
    this.#arrivals.splice(i, 0, arrival);
    return true;
  }

  /** The index of the first arrival at or after `seq`. */
  #indexOf(seq: number): number {
    let i = this.#arrivals.length;
    while (i > 0 && (this.#arrivals[i - 1] as Arrival).seq >= seq) i--;
    return i;
  }

  /** Drops reported arrivals older than the history. */
  #prune(nowUs: number): void {
    const windowStart = this.#windowStart ?? Number.POSITIVE_INFINITY;
    let drop = 0;
    for (const arrival of this.#arrivals) {
      if (arrival.seq >= windowStart || arrival.us >= nowUs - HISTORY_US) break;
      drop++;
    }
    if (drop > 0) this.#arrivals.splice(0, drop);
  }

  /** Stops listening and sending. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unsubscribe();
    this.#arrivals = [];
  }
}
