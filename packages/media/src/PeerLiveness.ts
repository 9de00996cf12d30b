import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';

export interface PeerLivenessOptions {
  /** Silence, time never connected, or time in a bad state after which the PC is dead, ms. */
  timeoutMs: number;
  /**
   * Whether the peer is expected to send now (the PC carries streams). While it is not, the
   * silence clock does not run: an idle PC is not judged, and its clock starts when it gets
   * streams. Default: always.
   */
  carriesStreams?: () => boolean;
  /** Called once, when the PC is judged dead; the watch has stopped by then. */
  onDead: (why: string) => void;
  /**
   * The clock the silence is measured on: the node's StallDetector, so that time the node
   * itself was not running is not blamed on the peer. Default: performance.now().
   */
  clock?: { now(): number };
}

/**
 * Judges a werift PeerConnection dead when it has been `failed`, `disconnected` or `closed`,
 * never connected, or heard nothing (no RTP, no RTCP) for `timeoutMs` while it carries streams.
 *
 * werift's state alone is not enough: an ICE-lite agent (every node-side PC, client legs and
 * relay receivers alike) runs no consent checks (RFC 7675), so a peer that vanished leaves the
 * PC `connected` forever. Every live peer sends RTCP every few seconds for each stream it sends
 * or receives (werift's senders every 0.5-1.5 s once they have sent RTP, browsers about every
 * second), so a PC that carries streams and falls silent is dead.
 *
 * Packets are counted, not timestamped, on the hot path; the periodic check turns a changed
 * count into "heard at this check", so the verdict is late by at most one check period.
 */
export class PeerLiveness {
  readonly #pc: RTCPeerConnection;
  readonly #timeoutMs: number;
  readonly #carriesStreams: () => boolean;
  readonly #onDead: (why: string) => void;
  readonly #timer: NodeJS.Timeout;
  readonly #offs: (() => void)[] = [];
  readonly #watched = new WeakSet<RTCDtlsTransport>();
  #connected = false;
  /** When the PC last left `connected` for a bad state (0: it is not in one). */
  #badSince = 0;
  /** When the peer was last heard from, or when the clock last (re)started. */
  #heardAt: number;
  #packets = 0;
  #seenPackets = 0;
  #closed = false;
  readonly #clock: { now(): number };

  constructor(pc: RTCPeerConnection, options: PeerLivenessOptions) {
    this.#pc = pc;
    this.#clock = options.clock ?? performance;
    this.#heardAt = this.#clock.now();
    this.#timeoutMs = options.timeoutMs;
    this.#carriesStreams = options.carriesStreams ?? (() => true);
    this.#onDead = options.onDead;
    this.#offs.push(
      pc.connectionStateChange.subscribe((state) => this.#onState(state)).unSubscribe,
    );
    this.#timer = setInterval(
      () => this.#check(this.#clock.now()),
      Math.min(1_000, this.#timeoutMs / 4),
    );
  }

  #onState(state: string): void {
    if (state === 'connected') {
      this.#connected = true;
      this.#badSince = 0;
      this.#heardAt = this.#clock.now();
      // The transports exist once connected; a renegotiation may add none (max-bundle) but
      // subscribing twice to one would only double-count, so each is watched once.
      for (const transport of this.#pc.dtlsTransports) {
        if (this.#watched.has(transport)) continue;
        this.#watched.add(transport);
        const heard = () => {
          this.#packets++;
        };
        this.#offs.push(
          transport.onRtp.subscribe(heard).unSubscribe,
          transport.onRtcp.subscribe(heard).unSubscribe,
        );
      }
    } else if (state === 'failed' || state === 'disconnected' || state === 'closed') {
      this.#badSince ||= this.#clock.now();
    }
  }

  #check(now: number): void {
    if (this.#packets !== this.#seenPackets) {
      this.#seenPackets = this.#packets;
      this.#heardAt = now;
    }
    let why: string | undefined;
    if (this.#badSince && now - this.#badSince > this.#timeoutMs) {
      why = `state ${this.#pc.connectionState}`;
    } else if (!this.#carriesStreams()) {
      this.#heardAt = now;
    } else if (now - this.#heardAt > this.#timeoutMs) {
      why = this.#connected ? 'no RTP or RTCP from the peer' : 'never connected';
    }
    if (why === undefined) return;
    this.close();
    this.#onDead(why);
  }

  /** Stops watching (the owner closes the PC). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const off of this.#offs.splice(0)) off();
  }
}
