/**
 * A werift bot that asks any node (or `sfu-directory`) where to go through `GET /v1/route`,
 * joins a room on that SFU node, publishes synthetic media and/or subscribes,
 * and measures what it receives. Integration tests, benchmarks and latency experiments drive
 * it, so it waits on events (never on sleeps) and `close()` leaves nothing running.
 */
import { type Logger, silentLogger, TypedEmitter } from '@geosfu/common';
import type {
  ParticipantInfo,
  ServerMessageOf,
  SubscribedTrack,
  SubscriptionPin,
  TrackKind,
} from '@geosfu/common/protocol';
import { fixWeriftDtls } from '@geosfu/media';
import type { RTCPeerConnection } from 'werift';
import WebSocket from 'ws';
import { type ChatMessage, type ClientEvents, ClientSession } from '../core/ClientSession.js';
import type { RouteAnswer } from '../core/route.js';
import { type SignalClient, SignalError } from '../core/SignalClient.js';
import type { BotOptions } from './BotOptions.js';
import { type ClockEstimate, type ClockSample, clockPingTs, estimateClockOffset } from './clock.js';
import type { PeerOptions } from './peer.js';
import type { PublishOptions } from './publisher.js';
import type { RtpLog } from './RtpLog.js';
import type { ReceivedStreamStats } from './receivedStream.js';
import { type SelectedPair, selectedPair } from './selectedPair.js';
import { nowMs, type SentStreamStats } from './source.js';
import type { ReceivedIntervalStats } from './subscriber.js';
import { WeriftDriver } from './WeriftDriver.js';
import { adaptWebSocket } from './wsAdapter.js';

// Every bot is a DTLS client towards its node (nodes answer a=setup:passive).
fixWeriftDtls();

/** Which layer of a simulcast video the node sends (`rid` null: paused). */
export type SubscriptionLayerInfo = ClientEvents['subscriptionLayer'][1];

export interface BotStats {
  received: ReceivedStreamStats[];
  sent: SentStreamStats[];
}

export type { BotOptions, ChatMessage, SelectedPair };

/** The session's events a bot passes on (see ClientEvents), and its own. */
export type BotEvents = Pick<
  ClientEvents,
  | 'subscribed'
  | 'participantJoined'
  | 'trackPublished'
  | 'trackUnpublished'
  | 'layersRequested'
  | 'chat'
  | 'serverError'
  | 'subscriptionLayer'
> & {
  firstPacket: [identity: string, kind: TrackKind, atMs: number];
  firstKeyframe: [identity: string, kind: TrackKind, atMs: number];
  keyframe: [identity: string, kind: TrackKind, atMs: number];
  /** The publisher's sender received a PLI. */
  pli: [kind: TrackKind];
  participantLeft: [left: ClientEvents['participantLeft'][0]];
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

export class Bot extends TypedEmitter<BotEvents> {
  readonly #log: Logger;
  readonly #options: BotOptions;
  readonly #peer: PeerOptions;
  readonly #session: ClientSession<WeriftDriver>;
  #ws: WebSocket | undefined;
  readonly #waiters = new Set<Waiter>();
  readonly #packetWaiters = new Set<() => void>();
  /** The last `subscription.layer` of each received simulcast video, by trackId. */
  readonly #layers = new Map<string, SubscriptionLayerInfo>();
  #closing: Promise<void> | undefined;
  #publishing: Promise<void> | undefined;
  #closedReason: string | undefined;
  readonly #timings: BotTimings = {
    startedAtMs: nowMs(),
    wsOpenAtMs: null,
    joinedAtMs: null,
    publishedAtMs: null,
  };

  private constructor(options: BotOptions) {
    const log = options.logger ?? silentLogger();
    const onListenerError = (event: string, error: unknown) =>
      log.error({ err: error, event }, 'bot event listener threw');
    super(onListenerError);
    this.#log = log;
    this.#options = options;
    this.#peer = {
      hostAddresses: options.hostAddresses,
      outboundLossPercent: options.lossPercent,
      inboundLossPercent: options.receiveLossPercent,
      turnTransport: options.turnTransport,
    };
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#session = new ClientSession({
      webSocket: (url) => {
        const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
        this.#ws = ws;
        return adaptWebSocket(ws);
      },
      driver: ({ joined }) =>
        new WeriftDriver({ ...this.#peer, iceServers: joined.iceServers }, log, {
          firstPacket: (identity, kind, atMs) => this.safeEmit('firstPacket', identity, kind, atMs),
          keyframe: (identity, kind, atMs, first) => {
            if (first) this.safeEmit('firstKeyframe', identity, kind, atMs);
            this.safeEmit('keyframe', identity, kind, atMs);
          },
          packet: () => {
            for (const check of [...this.#packetWaiters]) check();
          },
        }),
      onListenerError,
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

  /** The signalling client (for requests the bot has no method for). */
  get signal(): SignalClient {
    return this.#session.signal;
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
    return this.#session.route;
  }

  /**
   * The base URL a draining node suggested in its `leave {reason: 'draining', reconnect}`:
   * route through it to continue. The bot does not reconnect by itself.
   */
  get reconnectUrl(): string | undefined {
    return this.#session.reconnectUrl;
  }

  /** Why the bot closed (`undefined` while open). */
  get closedReason(): string | undefined {
    return this.#closedReason;
  }

  /** The other participants as last announced by the server. */
  participants(): ParticipantInfo[] {
    return this.#session.participants();
  }

  /** The werift PeerConnections (for getStats() and the like); absent until created. */
  get peerConnections(): { publisher?: RTCPeerConnection; subscriber?: RTCPeerConnection } {
    const driver = this.#session.driver;
    return { publisher: driver?.publisher?.pc, subscriber: driver?.subscriber?.pc };
  }

  /**
   * The candidate types (`host`, `srflx`, `relay`, ...) of the pair each PeerConnection
   * selected (nominated), local and remote; null for a connection without one.
   */
  async selectedCandidates(): Promise<{
    publisher: SelectedPair | null;
    subscriber: SelectedPair | null;
  }> {
    const { publisher, subscriber } = this.peerConnections;
    return {
      publisher: publisher ? await selectedPair(publisher) : null,
      subscriber: subscriber ? await selectedPair(subscriber) : null,
    };
  }

  /** The m-lines of the last subscriber offer. */
  subscribedTracks(): SubscribedTrack[] {
    return this.#session.subscribedTracks();
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
    return this.#session.driver?.subscriber?.intervalStats(atMs) ?? [];
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
    const signal = this.signal;
    const taken: ClockSample[] = [];
    for (let i = 0; i < samples; i++) {
      if (!signal.connected) {
        throw new SignalError('CLOSED', 'the signalling websocket is not open');
      }
      const t0 = clockPingTs(nowMs());
      const pong = this.#wait<number>(CLOCK_PING_TIMEOUT_MS, 'a pong to a clock ping', (resolve) =>
        signal.on('pong', (m) => {
          if (m.ts === t0) resolve(m.serverTs);
        }),
      );
      // Listening before sending; the socket is open, so send does not throw.
      signal.send({ type: 'ping', ts: t0 });
      const serverTs = await pong;
      taken.push({ t0, serverTs, t3: nowMs() });
    }
    const estimate = estimateClockOffset(taken);
    if (!estimate) throw new Error('no usable clock sample');
    return estimate;
  }

  stats(): BotStats {
    const driver = this.#session.driver;
    return {
      received: driver?.subscriber?.stats() ?? [],
      sent: driver?.publisher?.stats() ?? [],
    };
  }

  async chat(text: string): Promise<void> {
    await this.signal.request({ type: 'chat', text }, 'ok');
  }

  /** Stops sending the track of this kind and tells the server it is unpublished. */
  async unpublish(kind: TrackKind): Promise<void> {
    const publisher = this.#session.driver?.publisher;
    const trackId = publisher?.trackId(kind);
    if (!publisher || trackId === undefined) {
      throw new Error(`this bot publishes no ${kind} track`);
    }
    publisher.stopSource(kind);
    await this.signal.request({ type: 'unpublish', trackId }, 'ok');
  }

  /** Tells the node how the bot "shows" a received video, as a page does; awaits `ok`. */
  async updateSubscription(
    trackId: string,
    settings: { visible: boolean; width: number; height: number; pin?: SubscriptionPin },
  ): Promise<void> {
    await this.signal.request({ type: 'subscription.settings', trackId, ...settings }, 'ok');
  }

  /** The last `subscription.layer` the node sent for a received simulcast video. */
  subscriptionLayer(trackId: string): SubscriptionLayerInfo | undefined {
    return this.#layers.get(trackId);
  }

  /** Logs every RTP packet of the received track from now on; undefined before subscribing. */
  recordRtp(trackId: string): RtpLog | undefined {
    return this.#session.driver?.subscriber?.recordRtp(trackId);
  }

  /** Sends a PLI upstream for a subscribed stream; false when no such stream is subscribed. */
  async requestKeyframe(identity: string, kind: TrackKind = 'video'): Promise<boolean> {
    return (await this.#session.driver?.subscriber?.requestKeyframe(identity, kind)) ?? false;
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
    const at = this.#session.driver?.subscriber?.stream(identity, kind)?.firstKeyframeAtMs;
    if (at !== null && at !== undefined) return Promise.resolve(at);
    return this.#keyframe(identity, kind, timeoutMs, `a ${kind} key frame from ${identity}`);
  }

  /** Resolves with the time of the next key frame from this participant. */
  waitForNextKeyframe(
    identity: string,
    kind: TrackKind = 'video',
    timeoutMs = 10_000,
  ): Promise<number> {
    return this.#keyframe(identity, kind, timeoutMs, `another ${kind} key frame from ${identity}`);
  }

  #keyframe(identity: string, kind: TrackKind, timeoutMs: number, what: string): Promise<number> {
    const matches = (id: string, k: TrackKind) => id === identity && k === kind;
    return this.#waitForEvent('keyframe', matches, timeoutMs, what).then(([, , atMs]) => atMs);
  }

  /** Resolves once `count` unique packets of this stream have arrived. */
  waitForPackets(
    identity: string,
    kind: TrackKind,
    count: number,
    timeoutMs = 10_000,
  ): Promise<void> {
    const stream = () => this.#session.driver?.subscriber?.stream(identity, kind);
    const reached = () => (stream()?.packets ?? 0) >= count;
    if (reached()) return Promise.resolve();
    // Says, on timeout, how far the stream got: none at all, or a stall and since when.
    const what = () => {
      const s = stream()?.stats();
      const got = s
        ? `${s.packets} arrived, the last ${s.lastPacketAtMs === null ? '-' : Math.round(nowMs() - s.lastPacketAtMs)} ms ago, ${s.keyframes} key frames, ${s.lost} lost`
        : 'no such stream';
      return `${count} ${kind} packets from ${identity} (${got})`;
    };
    return this.#wait(timeoutMs, what, (resolve) => {
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
    const joined = await this.#session.connect({
      url: options.url,
      route: options.route ?? true,
      region: options.region,
      node: options.node,
      token: options.token,
      room: options.room,
      identity: options.identity,
      name: options.name,
      autoSubscribe: options.subscribe ?? true,
      timeoutMs,
    });
    if (options.subscribe !== false && !joined.grants.canSubscribe) {
      this.#log.warn('the token does not grant subscribing');
    }
    // Started by the `joined` event, before the offers that waited for the join.
    await this.#publishing;
  }

  /** Publishes what `options.publish` asks for; called once joined. */
  async #publishOnJoin(joined: ServerMessageOf<'joined'>): Promise<void> {
    const publish = this.#options.publish;
    if (!publish || !((publish.video ?? true) || (publish.audio ?? true))) return;
    if (!joined.grants.canPublish) {
      throw new SignalError('PERMISSION_DENIED', 'the token does not grant publishing');
    }
    await this.#publish(publish, this.#options.connectTimeoutMs ?? 10_000);
    this.#timings.publishedAtMs = nowMs();
  }

  async #publish(publish: PublishOptions, timeoutMs: number): Promise<void> {
    const driver = this.#session.driver;
    if (this.closed || !driver) throw new SignalError('CLOSED', 'the bot closed while publishing');
    const publisher = driver.createPublisher(publish, (kind) => this.safeEmit('pli', kind));
    await publisher.negotiate(async (sdp, tracks) => {
      const answer = await this.#session.publish(sdp, tracks, timeoutMs);
      return { sdp: answer.sdp, tracks: answer.tracks };
    });
    await this.#session.publisherAnswered();
    await publisher.start(timeoutMs);
    this.#log.info({ kinds: publisher.kinds }, 'publishing');
  }

  /** Logs the session's steps and passes its events on as the bot's. */
  #listen(): void {
    const s = this.#session;
    s.on('routed', (answer) => {
      if (!answer) return;
      const { nodeId, region, reason, distanceKm, signalUrl } = answer;
      this.#log.info({ nodeId, region, reason, distanceKm, signalUrl }, 'routed');
    });
    s.on('opened', () => {
      this.#timings.wsOpenAtMs = nowMs();
    });
    s.on('joined', (joined) => {
      this.#timings.joinedAtMs = nowMs();
      const { sessionId, room, nodeId } = joined;
      this.#log.info({ sessionId, room, nodeId }, 'joined');
      this.#publishing = this.#publishOnJoin(joined);
      // `#start` awaits it right after the join; until then a failure is not unhandled.
      this.#publishing.catch(() => undefined);
    });
    s.on('subscribed', (tracks) => {
      this.#log.debug({ tracks: tracks.length }, 'answered subscriber offer');
      this.safeEmit('subscribed', tracks);
    });
    s.on('subscribeFailed', (error) => this.#log.error({ err: error }, 'subscriber offer failed'));
    s.on('candidateRejected', (target, error) => {
      this.#log.warn({ err: error, target }, 'remote candidate rejected');
    });
    s.on('participantJoined', (p) => this.safeEmit('participantJoined', p));
    s.on('participantLeft', (left) => this.safeEmit('participantLeft', left));
    s.on('trackPublished', (sid, track) => this.safeEmit('trackPublished', sid, track));
    s.on('trackUnpublished', (sid, trackId) => this.safeEmit('trackUnpublished', sid, trackId));
    s.on('layersRequested', (trackId, rids) => {
      // Dynacast: the simulcast video sends only what someone needs.
      const publisher = s.driver?.publisher;
      if (publisher?.trackId('video') === trackId) publisher.setActiveLayers(rids);
      this.safeEmit('layersRequested', trackId, rids);
    });
    s.on('chat', (message) => this.safeEmit('chat', message));
    s.on('subscriptionLayer', (trackId, layer) => {
      this.#layers.set(trackId, layer);
      this.safeEmit('subscriptionLayer', trackId, layer);
    });
    s.on('serverError', (error) => {
      this.#log.warn(error, 'server error');
      this.safeEmit('serverError', error);
    });
    s.on('leave', (reason, reconnectUrl) => {
      if (reason === 'draining') {
        // Automatic reconnection is not implemented (yet): the bot closes like for any other
        // leave, and whoever drives it may route again through `reconnectUrl`.
        this.#log.info(
          { reason, reconnectUrl: reconnectUrl ?? null },
          reconnectUrl
            ? 'the node is draining; route again through the reconnect URL to continue'
            : 'the node is draining and named no other node to continue on',
        );
      } else {
        this.#log.info({ reason }, 'the server ended the session');
      }
      void this.close(`server: ${reason}`);
    });
    s.on('disconnected', ({ code, reason }) => {
      void this.close(`websocket closed (${code}${reason ? ` ${reason}` : ''})`);
    });
  }

  #joinedOrThrow(): ServerMessageOf<'joined'> {
    const joined = this.#session.joined;
    if (!joined) throw new Error('the bot has not joined');
    return joined;
  }

  /** A promise that rejects on timeout or close; `arm` registers and returns its disarm. */
  #wait<T>(
    timeoutMs: number,
    what: string | (() => string),
    arm: (resolve: (value: T) => void) => () => void,
  ): Promise<T> {
    const describe = () => (typeof what === 'string' ? what : what());
    if (this.closed) {
      return Promise.reject(new Error(`bot closed (${this.#closedReason}) before ${describe()}`));
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
        waiter.reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
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
    // Sends `leave` when joined, stops queued subscriber work, closes both PeerConnections.
    await this.#session.close();
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
