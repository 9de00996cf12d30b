/**
 * Pacing factor: media leaves at most this multiple of the estimate. Forwarded video averages
 * at most the estimate (the layer allocator sees to that); what pacing removes is the burst
 * of a keyframe (a switch up sends one: 20-40 KB in a few ms), which a bottleneck with a small
 * buffer (a token bucket with 100 ms of queue at 600 kbit/s holds 7.5 KB) drops, and whose
 * losses cost a NACK round, a freeze and often another keyframe. libwebrtc paces an encoder's
 * output at 2.5 times its target; a forwarder's input is not rate-controlled for its
 * subscriber, so it paces closer to the estimate.
 */
export const PACING_FACTOR = 1.25;
/**
 * Bytes that may leave at once beyond the paced rate: a frame's worth of small packets goes
 * out without waiting between them (timers are coarse), not a keyframe.
 */
const BURST_MS = 10;
const MIN_BURST_BYTES = 2 * 1_250;
/**
 * A packet waits at most about this long: when the queue holds more than the paced rate sends
 * before its oldest packet is this old, the rate rises to send all of it by then (a video
 * frame later than that is late for the receiver's jitter buffer anyway; losing it to the
 * bottleneck is no worse than delivering it late, and a queue that only grows would hold
 * everything).
 */
export const MAX_QUEUE_MS = 500;
/** The queue is limited: beyond this many packets the oldest are sent at once, unpaced. */
export const MAX_QUEUE_PACKETS = 2_000;

interface Queued<H> {
  payload: Buffer;
  header: H;
  bytes: number;
  queuedAt: number;
  resolve: (sent: number) => void;
  reject: (error: unknown) => void;
}

export interface PacerOptions<H> {
  /** Sends a packet now; resolves with the bytes written. */
  send: (payload: Buffer, header: H) => Promise<number>;
  /** The packet's size on the wire, bytes. */
  wireBytes: (payload: Buffer, header: H) => number;
  now?: () => number;
}

/**
 * Paces one transport's outgoing packets at PACING_FACTOR times the congestion controller's
 * estimate (`rateBps`); unpaced while there is no estimate. A packet that finds the queue
 * empty and the budget unspent leaves at once (the common case costs no timer); the rest wait
 * in order. `priority` packets (audio: small, and late audio is worse than late video) never
 * wait, but count against the budget, so video yields to them. Nothing queued is dropped: the
 * rate rises to drain a queue older than MAX_QUEUE_MS, and `close` settles what is left.
 */
export class Pacer<H> {
  readonly #send: PacerOptions<H>['send'];
  readonly #wireBytes: PacerOptions<H>['wireBytes'];
  readonly #now: () => number;
  readonly #queue: (Queued<H> | undefined)[] = [];
  #head = 0;
  #queuedBytes = 0;
  #rateBps: number | undefined;
  /** Bytes sent beyond what the paced rate allowed so far; paid back over time. */
  #debtBytes = 0;
  #debtAt: number;
  #timer: NodeJS.Timeout | undefined;
  #paced = 0;
  #closed = false;

  constructor(options: PacerOptions<H>) {
    this.#send = options.send;
    this.#wireBytes = options.wireBytes;
    this.#now = options.now ?? (() => performance.now());
    this.#debtAt = this.#now();
  }

  /** The estimate to pace at, bits/s; undefined: send everything at once. */
  set rateBps(bps: number | undefined) {
    this.#rateBps = bps !== undefined && bps > 0 ? bps : undefined;
    if (this.#rateBps === undefined) this.#flush();
    else this.#schedule();
  }

  get rateBps(): number | undefined {
    return this.#rateBps;
  }

  /** Packets waiting. */
  get queuedPackets(): number {
    return this.#queue.length - this.#head;
  }

  /** Bytes waiting (wire size). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** How long the packets waiting need at the paced rate, ms (0 when unpaced). */
  get queueDelayMs(): number {
    const rate = this.#pacedRate();
    return rate === undefined ? 0 : (this.#queuedBytes * 8_000) / rate;
  }

  /** Packets that had to wait, so far. */
  get pacedPackets(): number {
    return this.#paced;
  }

  send(payload: Buffer, header: H, priority = false): Promise<number> {
    if (this.#closed) return this.#send(payload, header);
    const bytes = this.#wireBytes(payload, header);
    if (this.#rateBps === undefined) return this.#send(payload, header);
    this.#payDebt();
    if (priority || (this.queuedPackets === 0 && this.#debtBytes <= this.#burstBytes())) {
      this.#debtBytes += bytes;
      return this.#send(payload, header);
    }
    this.#paced++;
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ payload, header, bytes, queuedAt: this.#now(), resolve, reject });
      this.#queuedBytes += bytes;
      if (this.queuedPackets > MAX_QUEUE_PACKETS) this.#sendHead();
      this.#schedule();
    });
  }

  /** Sends what is queued at once and stops pacing; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
  }

  #pacedRate(): number | undefined {
    const rate = this.#rateBps;
    if (rate === undefined) return undefined;
    const head = this.#queue[this.#head];
    if (!head) return rate * PACING_FACTOR;
    const left = Math.max(1, MAX_QUEUE_MS - (this.#now() - head.queuedAt));
    return Math.max(rate * PACING_FACTOR, (this.#queuedBytes * 8_000) / left);
  }

  #burstBytes(): number {
    const rate = this.#pacedRate() ?? 0;
    return Math.max(MIN_BURST_BYTES, (rate * BURST_MS) / 8_000);
  }

  #payDebt(): void {
    const now = this.#now();
    const rate = this.#pacedRate();
    if (rate !== undefined && this.#debtBytes > 0)
      this.#debtBytes = Math.max(0, this.#debtBytes - (rate * (now - this.#debtAt)) / 8_000);
    this.#debtAt = now;
  }

  #sendHead(): void {
    const item = this.#queue[this.#head];
    if (!item) return;
    this.#queue[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1_024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#queuedBytes -= item.bytes;
    this.#debtBytes += item.bytes;
    this.#send(item.payload, item.header).then(item.resolve, item.reject);
  }

  #process = (): void => {
    this.#timer = undefined;
    if (this.#rateBps === undefined) {
      this.#flush();
      return;
    }
    this.#payDebt();
    while (this.queuedPackets > 0 && this.#debtBytes <= this.#burstBytes()) this.#sendHead();
    this.#schedule();
  };

  #schedule(): void {
    if (this.#timer || this.queuedPackets === 0 || this.#closed) return;
    const rate = this.#pacedRate();
    if (rate === undefined) {
      this.#flush();
      return;
    }
    const waitMs = ((this.#debtBytes - this.#burstBytes()) * 8_000) / rate;
    this.#timer = setTimeout(this.#process, Math.max(1, Math.ceil(waitMs)));
    this.#timer.unref?.();
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.queuedPackets > 0) this.#sendHead();
    this.#queue.length = 0;
    this.#head = 0;
    this.#queuedBytes = 0;
  }
}
