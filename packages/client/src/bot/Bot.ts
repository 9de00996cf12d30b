/**
 * A werift bot that asks any node (or `sfu-directory`) where to go through `GET /v1/route`,
 * joins a room on that SFU node, publishes synthetic media and/or subscribes,
 * and measures what it receives. Integration tests, benchmarks and latency experiments drive
 * it, so it waits on events (never on sleeps) and `close()` leaves nothing running.
 */
import { type Logger, silentLogger, TypedEmitter } from '@geosfu/common';
import type {
  ErrorCode,
  LeaveReason,
  ParticipantInfo,
  ServerMessageOf,
  SubscribedTrack,
  TrackInfo,
  TrackKind,
} from '@geosfu/common/protocol';
import type { RTCPeerConnection } from 'werift';
import WebSocket from 'ws';
import { type RouteAnswer, route } from '../route.js';
import { SignalClient, SignalError, signalUrlFor, type WebSocketLike } from '../SignalClient.js';
import { type ClockEstimate, type ClockSample, clockPingTs, estimateClockOffset } from './clock.js';
import { fetchDevToken } from './devToken.js';
import type { PeerOptions } from './peer.js';
import { BotPublisher, type PublishOptions } from './publisher.js';
import type { ReceivedStreamStats } from './receivedStream.js';
import { nowMs, type SentStreamStats } from './source.js';
import { BotSubscriber, type ReceivedIntervalStats } from './subscriber.js';
import { fixWeriftDtls } from './weriftDtls.js';

// Every bot is a DTLS client towards its node (nodes answer a=setup:passive).
fixWeriftDtls();

export interface BotOptions {
  /**
   * Any node or `sfu-directory`: http(s)://host:port (ws(s):// works too). The bot asks its
   * `/v1/route` where to connect and opens the websocket there. With `route: false` it is the
   * node itself, and may carry the signalling path: ws(s)://host:port[/v1/signal].
   */
  url: string;
  /**
   * Ask `url`'s `GET /v1/route` for the node (default true). False connects straight to `url`
   * (tests that target one node directly).
   */
  route?: boolean;
  /** Pin a region through the route (needs the `canPinRegion` grant). Not with `node`. */
  region?: string;
  /** Pin a node id through the route (needs the `canPinRegion` grant). Not with `region`. */
  node?: string;
  /**
   * An access token. Without one, `room` and `identity` get a token from `url`'s dev endpoint
   * (with the `canPinRegion` grant when `region` or `node` is given).
   */
  token?: string;
  room?: string;
  identity?: string;
  name?: string;
  /** What to publish; nothing when absent. */
  publish?: PublishOptions;
  /** Ask the server to subscribe this bot to every track (default true). */
  subscribe?: boolean;
  /** Use only these local addresses for ICE (tests pass ['127.0.0.1']). */
  hostAddresses?: string[];
  /** Outgoing packet loss of the publisher connection in percent, for NACK tests. */
  lossPercent?: number;
  /** Incoming packet loss of the subscriber connection in percent. */
  receiveLossPercent?: number;
  logger?: Logger;
  /** Websocket open, join, publish and the publisher's ICE/DTLS each get this long (10 s). */
  connectTimeoutMs?: number;
}

export interface BotStats {
  received: ReceivedStreamStats[];
  sent: SentStreamStats[];
}

export interface ChatMessage {
  from: { sessionId: string; identity: string; name: string };
  text: string;
  ts: number;
}

export type BotEvents = {
  firstPacket: [identity: string, kind: TrackKind, atMs: number];
  firstKeyframe: [identity: string, kind: TrackKind, atMs: number];
  keyframe: [identity: string, kind: TrackKind, atMs: number];
  /** The publisher's sender received a PLI. */
  pli: [kind: TrackKind];
  /** A subscriber offer was answered; the tracks are the m-lines it carries. */
  subscribed: [tracks: SubscribedTrack[]];
  participantJoined: [participant: ParticipantInfo];
  participantLeft: [left: { sessionId: string; identity: string; reason: LeaveReason }];
  trackPublished: [participantSid: string, track: TrackInfo];
  trackUnpublished: [participantSid: string, trackId: string];
  chat: [message: ChatMessage];
  /** An error the server sent that answers no request of ours. */
  serverError: [error: { code: ErrorCode; message: string }];
  closed: [reason: string];
};

/**
 * When the steps of `Bot.connect` completed, epoch ms on the `nowMs()` clock (the probes'
 * clock); null for a step not reached (yet), or not taken (`published` without `publish`).
 */
export interface BotTimings {
  /** `Bot.connect` was called. */
  startedAtMs: number;
  /** The signalling websocket opened (after the dev token and the route). */
  wsOpenAtMs: number | null;
  /** The server's `joined` arrived. */
  joinedAtMs: number | null;
  /** The publisher's transport connected and its sources started. */
  publishedAtMs: number | null;
}

interface Waiter {
  reject: (error: Error) => void;
  cancel: () => void;
}

const CLOSE_WAIT_MS = 1_000;
const CLOCK_PING_TIMEOUT_MS = 5_000;

/** Adapts the `ws` package's EventEmitter API to the handler properties SignalClient uses. */
function adaptWebSocket(ws: WebSocket): WebSocketLike {
  const adapter: WebSocketLike = {
    get readyState() {
      return ws.readyState;
    },
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    onopen: null,
    onclose: null,
    onerror: null,
    onmessage: null,
  };
  ws.on('open', () => adapter.onopen?.(undefined));
  ws.on('close', (code, reason) => adapter.onclose?.({ code, reason: reason.toString() }));
  // Without an 'error' listener an EventEmitter throws; the close event carries what matters.
  ws.on('error', (error) => adapter.onerror?.(error));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) adapter.onmessage?.({ data: data.toString() });
  });
  return adapter;
}

export class Bot extends TypedEmitter<BotEvents> {
  readonly signal: SignalClient;
  readonly #log: Logger;
  readonly #options: BotOptions;
  readonly #peer: PeerOptions;
  #ws: WebSocket | undefined;
  #wsError: Error | undefined;
  #joined: ServerMessageOf<'joined'> | undefined;
  #publisher: BotPublisher | undefined;
  #subscriber: BotSubscriber | undefined;
  /** Subscriber negotiations and trickles run one at a time, after the join completed. */
  #subscriberQueue: Promise<void>;
  #releaseQueue!: () => void;
  readonly #participants = new Map<string, ParticipantInfo>();
  readonly #waiters = new Set<Waiter>();
  readonly #packetWaiters = new Set<() => void>();
  #closing: Promise<void> | undefined;
  #closedReason: string | undefined;
  #route: RouteAnswer | undefined;
  #reconnectUrl: string | undefined;
  readonly #timings: BotTimings = {
    startedAtMs: nowMs(),
    wsOpenAtMs: null,
    joinedAtMs: null,
    publishedAtMs: null,
  };

  private constructor(options: BotOptions) {
    const log = options.logger ?? silentLogger();
    super((event, error) => log.error({ err: error, event }, 'bot event listener threw'));
    this.#log = log;
    this.#options = options;
    this.#peer = {
      hostAddresses: options.hostAddresses,
      outboundLossPercent: options.lossPercent,
      inboundLossPercent: options.receiveLossPercent,
    };
    this.#subscriberQueue = new Promise((resolve) => {
      this.#releaseQueue = resolve;
    });
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    this.signal = new SignalClient((url) => {
      const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
      ws.on('error', (error) => {
        this.#wsError = error;
      });
      this.#ws = ws;
      return adaptWebSocket(ws);
    });
    this.#listen();
  }

  /** Connects, joins, and (when asked) publishes; resolves once media is flowing out. */
  static async connect(options: BotOptions): Promise<Bot> {
    const bot = new Bot(options);
    try {
      await bot.#start();
      return bot;
    } catch (error) {
      await bot.close('connect failed');
      throw error;
    }
  }

  get sessionId(): string {
    return this.#joinedOrThrow().sessionId;
  }

  get identity(): string {
    return this.#joinedOrThrow().participant.identity;
  }

  get room(): string {
    return this.#joinedOrThrow().room;
  }

  get joined(): ServerMessageOf<'joined'> {
    return this.#joinedOrThrow();
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Where `/v1/route` sent the bot; undefined with `route: false` (or before routing). */
  get route(): RouteAnswer | undefined {
    return this.#route;
  }

  /**
   * The base URL a draining node suggested in its `leave {reason: 'draining', reconnect}`:
   * route through it to continue. The bot does not reconnect by itself.
   */
  get reconnectUrl(): string | undefined {
    return this.#reconnectUrl;
  }

  /** Why the bot closed (`undefined` while open). */
  get closedReason(): string | undefined {
    return this.#closedReason;
  }

  /** The other participants as last announced by the server. */
  participants(): ParticipantInfo[] {
    return [...this.#participants.values()];
  }

  /** The werift PeerConnections (for getStats() and the like); absent until created. */
  get peerConnections(): { publisher?: RTCPeerConnection; subscriber?: RTCPeerConnection } {
    return { publisher: this.#publisher?.pc, subscriber: this.#subscriber?.pc };
  }

  /** The m-lines of the last subscriber offer. */
  subscribedTracks(): SubscribedTrack[] {
    return this.#subscriber?.tracks ?? [];
  }

  /** When the steps of `connect` completed (a copy). */
  get timings(): BotTimings {
    return { ...this.#timings };
  }

  /**
   * What each received stream got since the previous call (the first call: since the stream's
   * first packet), and starts the next interval at `atMs`. Cumulative `stats()` are unchanged.
   */
  intervalStats(atMs: number = nowMs()): ReceivedIntervalStats[] {
    return this.#subscriber?.intervalStats(atMs) ?? [];
  }

  /**
   * Estimates the node's clock against this bot's probe clock (`nowMs()`) from `samples`
   * sequential `ping`/`pong` exchanges on the signalling websocket, NTP style: the exchange
   * with the smallest round trip gives offset = serverTs - (t0 + t3) / 2 (node minus bot).
   * Pongs are matched to these pings by `ts`, so the keep-alive pings do not interfere.
   * Rejects when a pong does not come within 5 s or the bot closes.
   */
  async measureClock(samples = 5): Promise<ClockEstimate> {
    if (!(Number.isInteger(samples) && samples >= 1)) {
      throw new RangeError(`samples must be a positive integer, got ${samples}`);
    }
    this.#joinedOrThrow();
    const taken: ClockSample[] = [];
    for (let i = 0; i < samples; i++) {
      if (!this.signal.connected) {
        throw new SignalError('CLOSED', 'the signalling websocket is not open');
      }
      const t0 = clockPingTs(nowMs());
      const pong = this.#wait<number>(CLOCK_PING_TIMEOUT_MS, 'a pong to a clock ping', (resolve) =>
        this.signal.on('pong', (m) => {
          if (m.ts === t0) resolve(m.serverTs);
        }),
      );
      // Listening before sending; the socket is open, so send does not throw.
      this.signal.send({ type: 'ping', ts: t0 });
      const serverTs = await pong;
      taken.push({ t0, serverTs, t3: nowMs() });
    }
    const estimate = estimateClockOffset(taken);
    if (!estimate) throw new Error('no usable clock sample');
    return estimate;
  }

  stats(): BotStats {
    return {
      received: this.#subscriber?.stats() ?? [],
      sent: this.#publisher?.stats() ?? [],
    };
  }

  async chat(text: string): Promise<void> {
    await this.signal.request({ type: 'chat', text }, 'ok');
  }

  /** Stops sending the track of this kind and tells the server it is unpublished. */
  async unpublish(kind: TrackKind): Promise<void> {
    const trackId = this.#publisher?.trackId(kind);
    if (!this.#publisher || trackId === undefined) {
      throw new Error(`this bot publishes no ${kind} track`);
    }
    this.#publisher.stopSource(kind);
    await this.signal.request({ type: 'unpublish', trackId }, 'ok');
  }

  /** Sends a PLI upstream for a subscribed stream; false when no such stream is subscribed. */
  async requestKeyframe(identity: string, kind: TrackKind = 'video'): Promise<boolean> {
    return (await this.#subscriber?.requestKeyframe(identity, kind)) ?? false;
  }

  /**
   * Resolves with the time of the first key frame received from this participant, at once
   * when one has arrived already. Streams are keyed by identity and kind and outlive a
   * republish or rejoin; after one, use `waitForNextKeyframe`.
   */
  waitForKeyframe(
    identity: string,
    kind: TrackKind = 'video',
    timeoutMs = 10_000,
  ): Promise<number> {
    const at = this.#subscriber?.stream(identity, kind)?.firstKeyframeAtMs;
    if (at !== null && at !== undefined) return Promise.resolve(at);
    return this.#waitForEvent(
      'keyframe',
      (id, k) => id === identity && k === kind,
      timeoutMs,
      `a ${kind} key frame from ${identity}`,
    ).then(([, , atMs]) => atMs);
  }

  /** Resolves with the time of the next key frame from this participant. */
  waitForNextKeyframe(
    identity: string,
    kind: TrackKind = 'video',
    timeoutMs = 10_000,
  ): Promise<number> {
    return this.#waitForEvent(
      'keyframe',
      (id, k) => id === identity && k === kind,
      timeoutMs,
      `another ${kind} key frame from ${identity}`,
    ).then(([, , atMs]) => atMs);
  }

  /** Resolves once `count` unique packets of this stream have arrived. */
  waitForPackets(
    identity: string,
    kind: TrackKind,
    count: number,
    timeoutMs = 10_000,
  ): Promise<void> {
    const reached = () => (this.#subscriber?.stream(identity, kind)?.packets ?? 0) >= count;
    if (reached()) return Promise.resolve();
    return this.#wait(timeoutMs, `${count} ${kind} packets from ${identity}`, (resolve) => {
      const check = () => {
        if (reached()) resolve();
      };
      this.#packetWaiters.add(check);
      return () => this.#packetWaiters.delete(check);
    });
  }

  /**
   * Sends `leave`, closes both PeerConnections and the websocket, stops every timer.
   * Idempotent: later calls return the first call's promise.
   */
  close(reason = 'closed'): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closedReason = reason;
    this.#closing = this.#shutdown(reason);
    return this.#closing;
  }

  async #start(): Promise<void> {
    const options = this.#options;
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    if (options.region && options.node) {
      throw new SignalError('INVALID_ARGUMENT', 'pin a region or a node, not both');
    }
    if (options.route === false && (options.region || options.node)) {
      throw new SignalError('INVALID_ARGUMENT', 'pinning a region or node needs route: true');
    }
    // Before the socket opens: the node gives an idle socket only so long to join.
    const token = await this.#token();
    let url: string;
    if (options.route === false) {
      url = signalUrlFor(options.url);
    } else {
      const answer = await route(options.url, token, {
        room: options.room,
        region: options.region,
        node: options.node,
        timeoutMs,
      });
      if (this.closed) throw new SignalError('CLOSED', 'the bot closed while routing');
      this.#route = answer;
      this.#log.info(
        {
          nodeId: answer.nodeId,
          region: answer.region,
          reason: answer.reason,
          distanceKm: answer.distanceKm,
          signalUrl: answer.signalUrl,
        },
        'routed',
      );
      url = answer.signalUrl;
    }
    try {
      await this.signal.connect(url);
    } catch (error) {
      const cause = this.#wsError?.message ?? (error as Error).message;
      throw new SignalError('CLOSED', `cannot connect to ${url}: ${cause}`);
    }
    this.#timings.wsOpenAtMs = nowMs();
    const joined = await this.signal.join(token, {
      autoSubscribe: options.subscribe ?? true,
    });
    this.#timings.joinedAtMs = nowMs();
    this.#joined = joined;
    this.#peer.iceServers = joined.iceServers;
    for (const p of joined.participants) {
      if (p.sessionId !== joined.sessionId) this.#participants.set(p.sessionId, p);
    }
    this.#log.info(
      { sessionId: joined.sessionId, room: joined.room, nodeId: joined.nodeId },
      'joined',
    );
    this.#releaseQueue();
    if (options.subscribe !== false && !joined.grants.canSubscribe) {
      this.#log.warn('the token does not grant subscribing');
    }
    if (options.publish && ((options.publish.video ?? true) || (options.publish.audio ?? true))) {
      if (!joined.grants.canPublish) {
        throw new SignalError('PERMISSION_DENIED', 'the token does not grant publishing');
      }
      await this.#publish(options.publish, timeoutMs);
      this.#timings.publishedAtMs = nowMs();
    }
  }

  async #token(): Promise<string> {
    const { token, room, identity, name, url, region, node } = this.#options;
    if (token) return token;
    if (!room || !identity) {
      throw new SignalError(
        'TOKEN_MISSING',
        'give a token, or a room and an identity for a dev token',
      );
    }
    return fetchDevToken(url, {
      room,
      identity,
      ...(name ? { name } : {}),
      // Pinning is refused (PERMISSION_DENIED) without this grant.
      ...(region || node ? { canPinRegion: true } : {}),
    });
  }

  async #publish(publish: PublishOptions, timeoutMs: number): Promise<void> {
    if (this.closed) throw new SignalError('CLOSED', 'the bot closed while publishing');
    const publisher = new BotPublisher(
      publish,
      this.#peer,
      this.#log.child({ pc: 'publisher' }),
      (kind) => this.safeEmit('pli', kind),
    );
    this.#publisher = publisher;
    await publisher.negotiate(async (sdp, tracks) => {
      const answer = await this.signal.request(
        { type: 'publish', sdp, tracks },
        'publish.answer',
        timeoutMs,
      );
      return { sdp: answer.sdp, tracks: answer.tracks };
    });
    await publisher.start(timeoutMs);
    this.#log.info({ kinds: publisher.kinds }, 'publishing');
  }

  #listen(): void {
    const s = this.signal;
    s.on('subscriber.offer', (m) => {
      this.#enqueue(async () => {
        const subscriber = this.#ensureSubscriber();
        const sdp = await subscriber.handleOffer(m.sdp, m.tracks);
        if (this.closed) return;
        this.signal.send({ type: 'subscriber.answer', sdp });
        this.#log.debug({ tracks: m.tracks.length }, 'answered subscriber offer');
        this.safeEmit('subscribed', m.tracks);
      }, 'subscriber offer');
    });
    s.on('trickle', (m) => {
      if (m.target === 'publisher') {
        this.#publisher?.addRemoteCandidate(m.candidate).catch((error: unknown) => {
          this.#log.warn({ err: error }, 'publisher candidate rejected');
        });
      } else {
        this.#enqueue(async () => {
          await this.#ensureSubscriber().addRemoteCandidate(m.candidate);
        }, 'subscriber candidate');
      }
    });
    s.on('participant.joined', (m) => {
      this.#participants.set(m.participant.sessionId, m.participant);
      this.safeEmit('participantJoined', m.participant);
    });
    s.on('participant.left', (m) => {
      this.#participants.delete(m.sessionId);
      this.safeEmit('participantLeft', {
        sessionId: m.sessionId,
        identity: m.identity,
        reason: m.reason,
      });
    });
    s.on('track.published', (m) => {
      const p = this.#participants.get(m.participantSid);
      if (p) p.tracks = [...p.tracks.filter((t) => t.trackId !== m.track.trackId), m.track];
      this.safeEmit('trackPublished', m.participantSid, m.track);
    });
    s.on('track.unpublished', (m) => {
      const p = this.#participants.get(m.participantSid);
      if (p) p.tracks = p.tracks.filter((t) => t.trackId !== m.trackId);
      this.safeEmit('trackUnpublished', m.participantSid, m.trackId);
    });
    s.on('chat', (m) => {
      this.safeEmit('chat', { from: m.from, text: m.text, ts: m.ts });
    });
    s.on('error', (m) => {
      if (this.closed) return;
      this.#log.warn({ code: m.code, message: m.message }, 'server error');
      this.safeEmit('serverError', { code: m.code, message: m.message });
    });
    s.on('leave', (m) => {
      if (m.reason === 'draining') {
        // Automatic reconnection is not implemented (yet): the bot closes like for any other
        // leave, and whoever drives it may route again through `reconnectUrl`.
        this.#reconnectUrl = m.reconnect?.url;
        this.#log.info(
          { reason: m.reason, reconnectUrl: m.reconnect?.url ?? null },
          m.reconnect
            ? 'the node is draining; route again through the reconnect URL to continue'
            : 'the node is draining and named no other node to continue on',
        );
      } else {
        this.#log.info({ reason: m.reason }, 'the server ended the session');
      }
      void this.close(`server: ${m.reason}`);
    });
    s.on('close', ({ code, reason }) => {
      void this.close(`websocket closed (${code}${reason ? ` ${reason}` : ''})`);
    });
  }

  #enqueue(task: () => Promise<void>, what: string): void {
    this.#subscriberQueue = this.#subscriberQueue.then(async () => {
      if (this.closed) return;
      try {
        await task();
      } catch (error) {
        if (!this.closed) this.#log.error({ err: error }, `${what} failed`);
      }
    });
  }

  #ensureSubscriber(): BotSubscriber {
    if (!this.#subscriber) {
      this.#subscriber = new BotSubscriber(this.#peer, this.#log.child({ pc: 'subscriber' }), {
        firstPacket: (identity, kind, atMs) => this.safeEmit('firstPacket', identity, kind, atMs),
        keyframe: (identity, kind, atMs, first) => {
          if (first) this.safeEmit('firstKeyframe', identity, kind, atMs);
          this.safeEmit('keyframe', identity, kind, atMs);
        },
        packet: () => {
          for (const check of [...this.#packetWaiters]) check();
        },
      });
    }
    return this.#subscriber;
  }

  #joinedOrThrow(): ServerMessageOf<'joined'> {
    if (!this.#joined) throw new Error('the bot has not joined');
    return this.#joined;
  }

  /** A promise that rejects on timeout or close; `arm` registers and returns its disarm. */
  #wait<T>(
    timeoutMs: number,
    what: string,
    arm: (resolve: (value: T) => void) => () => void,
  ): Promise<T> {
    if (this.closed) {
      return Promise.reject(new Error(`bot closed (${this.#closedReason}) before ${what}`));
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        reject: (error) => {
          waiter.cancel();
          reject(error);
        },
        cancel: () => {
          clearTimeout(timer);
          disarm();
          this.#waiters.delete(waiter);
        },
      };
      const timer = setTimeout(() => {
        waiter.reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const disarm = arm((value) => {
        waiter.cancel();
        resolve(value);
      });
      this.#waiters.add(waiter);
    });
  }

  #waitForEvent<K extends keyof BotEvents>(
    event: K,
    predicate: (...args: BotEvents[K]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<BotEvents[K]> {
    return this.#wait(timeoutMs, what, (resolve) =>
      this.on(event, (...args: BotEvents[K]) => {
        if (predicate(...args)) resolve(args);
      }),
    );
  }

  async #shutdown(reason: string): Promise<void> {
    this.#log.info({ reason }, 'closing');
    for (const w of [...this.#waiters]) {
      w.reject(new Error(`bot closed (${reason})`));
    }
    this.#packetWaiters.clear();
    // Let queued subscriber work see `closed` and stop; a join that never finished never
    // releases the queue, so release it here.
    this.#releaseQueue();
    if (this.#joined) {
      this.signal.close();
    } else {
      // Not joined: SignalClient.close() would send a `leave` the server answers with
      // NOT_JOINED. Closing the socket itself still rejects whatever is pending.
      this.#ws?.close(1000, 'client closed');
    }
    const results = await Promise.allSettled([this.#publisher?.close(), this.#subscriber?.close()]);
    for (const r of results) {
      if (r.status === 'rejected')
        this.#log.warn({ err: r.reason }, 'closing a PeerConnection failed');
    }
    await this.#closeWebSocket();
    this.safeEmit('closed', reason);
  }

  /** Waits briefly for the websocket's closing handshake, then drops the socket. */
  async #closeWebSocket(): Promise<void> {
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      // ws keeps an unanswered close handshake alive for 30 s; do not hold the process that long.
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, CLOSE_WAIT_MS);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    });
  }
}
