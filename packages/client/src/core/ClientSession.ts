/**
 * One connection of a client to one node, at the protocol level: the dev token, `/v1/route`,
 * the signalling websocket and the join; the other participants (a Roster, with typed events);
 * subscriber offers answered one at a time after the join; candidates routed to the right
 * PeerConnection at the right moment; what a draining node said to continue elsewhere. The
 * PeerConnections themselves are a PeerDriver's (browser or werift). Browser-safe: the demo
 * page and the bot are both thin layers over this class.
 */
import { TypedEmitter } from '@geosfu/common/events';
import type {
  ClientMessageOf,
  ErrorCode,
  LeaveReason,
  ParticipantInfo,
  ServerMessageOf,
  SubscribedTrack,
  SubscriptionPin,
  TrackInfo,
} from '@geosfu/common/protocol';
import { fetchDevToken } from './devToken.js';
import type { DriverFactory, PeerDriver } from './PeerDriver.js';
import { Roster } from './Roster.js';
import { type RouteAnswer, route } from './route.js';
import {
  REQUEST_TIMEOUT_MS,
  SignalClient,
  SignalError,
  signalUrlFor,
  type WebSocketFactory,
} from './SignalClient.js';
import { TrickleRouter } from './TrickleRouter.js';

export interface ConnectOptions {
  /**
   * Any node or `sfu-directory` (http(s):// or ws(s)://): its `/v1/route` says where to go.
   * With `route: false` it is the node itself, and may carry the path: ws(s)://host[/v1/signal].
   */
  url: string;
  /** Ask `url`'s `/v1/route` for the node (default true). */
  route?: boolean;
  /**
   * When `url`'s `/v1/route` cannot be reached (SERVICE_UNAVAILABLE), connect to `url` itself.
   * For a draining node's reconnect URL: a page may read another origin's answer only when
   * that node allows it (CORS); websockets have no such rule, and the draining node chose it.
   */
  directIfUnreachable?: boolean;
  /** Pin a region through the route (needs the `canPinRegion` grant). Not with `node`. */
  region?: string | undefined;
  /** Pin a node id through the route (needs the `canPinRegion` grant). Not with `region`. */
  node?: string | undefined;
  /** An access token; without one, `room` and `identity` get one from `url`'s dev endpoint. */
  token?: string | undefined;
  room?: string | undefined;
  identity?: string | undefined;
  name?: string | undefined;
  /** Ask the server to subscribe this session to every track (default true). */
  autoSubscribe?: boolean;
  /** For the route request (default 10 s). */
  timeoutMs?: number;
}

export interface ChatMessage {
  from: { sessionId: string; identity: string; name: string };
  text: string;
  ts: number;
}

export type PublishTracks = ClientMessageOf<'publish'>['tracks'];

export type ClientEvents = {
  /** Where the websocket goes: the route's answer (null when not routed). */
  routed: [answer: RouteAnswer | null, signalUrl: string];
  /** The signalling websocket opened. */
  opened: [];
  joined: [joined: ServerMessageOf<'joined'>];
  participantJoined: [participant: ParticipantInfo];
  /** `participant` is what the roster knew of them (undefined: never announced). */
  participantLeft: [
    left: { sessionId: string; identity: string; reason: LeaveReason },
    participant: ParticipantInfo | undefined,
  ];
  trackPublished: [participantSid: string, track: TrackInfo];
  trackUnpublished: [participantSid: string, trackId: string];
  trackMuted: [participantSid: string, trackId: string, muted: boolean];
  /**
   * Dynacast: the layers (rids) of our simulcast track `trackId` that someone needs; the
   * publishing side sends these and pauses the others (`encodings[i].active`).
   */
  layersRequested: [trackId: string, rids: string[]];
  /** The layer of a remote simulcast video we now receive (`rid` null: paused). */
  subscriptionLayer: [
    trackId: string,
    layer: { rid: string | null; width: number; height: number },
  ];
  /** A subscriber offer was answered; the tracks are the m-lines it carries. */
  subscribed: [tracks: SubscribedTrack[]];
  /** Answering a subscriber offer failed (the session goes on). */
  subscribeFailed: [error: unknown];
  candidateRejected: [target: 'publisher' | 'subscriber', error: unknown];
  chat: [message: ChatMessage];
  /** The room service changed what we may do (publish, subscribe, chat); it applies at once. */
  permissions: [permissions: { canPublish: boolean; canSubscribe: boolean; canChat: boolean }];
  /** A participant's name or metadata changed (room service API); also this session's own. */
  participantUpdated: [participant: ParticipantInfo];
  /** A message from the application (room service API). */
  data: [message: { payload: string; topic: string | undefined; ts: number }];
  /** An error the server sent that answers no request of ours. */
  serverError: [error: { code: ErrorCode; message: string }];
  /** The server ended the session; a draining node names where to continue (`reconnectUrl`). */
  leave: [reason: LeaveReason, reconnectUrl: string | undefined];
  /** The websocket closed and we did not close it. */
  disconnected: [info: { code: number; reason: string }];
};

export interface ClientSessionOptions<D extends PeerDriver> {
  webSocket: WebSocketFactory;
  /** Builds the PeerConnections once joined (they need the `joined` ICE servers). */
  driver: DriverFactory<D>;
  /** A listener that threw (default: rethrown on the next tick). */
  onListenerError?: (event: string, error: unknown) => void;
}

export class ClientSession<D extends PeerDriver = PeerDriver> extends TypedEmitter<ClientEvents> {
  readonly signal: SignalClient;
  readonly #createDriver: DriverFactory<D>;
  readonly #roster = new Roster();
  readonly #trickle: TrickleRouter;
  #driver: D | undefined;
  /** Subscriber negotiations run one at a time, after the join completed. */
  #queue: Promise<void>;
  #releaseQueue!: () => void;
  #subscribed: SubscribedTrack[] = [];
  #joined: ServerMessageOf<'joined'> | undefined;
  #token: string | undefined;
  #route: RouteAnswer | undefined;
  #reconnectUrl: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ClientSessionOptions<D>) {
    super(options.onListenerError);
    this.signal = new SignalClient(options.webSocket);
    this.#createDriver = options.driver;
    this.#queue = new Promise((resolve) => {
      this.#releaseQueue = resolve;
    });
    this.#trickle = new TrickleRouter({
      send: (target, candidate) => {
        try {
          this.signal.send({ type: 'trickle', target, candidate });
        } catch {
          // The socket is closing: the session is ending anyway.
        }
      },
      add: async (target, candidate) => this.#driver?.addRemoteCandidate(target, candidate),
      rejected: (target, error) => this.safeEmit('candidateRejected', target, error),
    });
    this.#listen();
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The PeerConnections; undefined until joined. */
  get driver(): D | undefined {
    return this.#driver;
  }

  get joined(): ServerMessageOf<'joined'> | undefined {
    return this.#joined;
  }

  /** The access token `connect` used (given or from the dev endpoint). */
  get token(): string | undefined {
    return this.#token;
  }

  /** Where `/v1/route` sent this session; undefined when not routed. */
  get route(): RouteAnswer | undefined {
    return this.#route;
  }

  /** The base URL a draining node named in its `leave {reason: 'draining', reconnect}`. */
  get reconnectUrl(): string | undefined {
    return this.#reconnectUrl;
  }

  /** The other participants as last announced by the server. */
  participants(): ParticipantInfo[] {
    return this.#roster.list();
  }

  participant(sessionId: string): ParticipantInfo | undefined {
    return this.#roster.get(sessionId);
  }

  /** The m-lines of the last subscriber offer. */
  subscribedTracks(): SubscribedTrack[] {
    return [...this.#subscribed];
  }

  /** Dev token (unless given), route (unless `route: false`), websocket, join. */
  async connect(options: ConnectOptions): Promise<ServerMessageOf<'joined'>> {
    if (options.region && options.node) {
      throw new SignalError('INVALID_ARGUMENT', 'pin a region or a node, not both');
    }
    if (options.route === false && (options.region || options.node)) {
      throw new SignalError('INVALID_ARGUMENT', 'pinning a region or node needs route: true');
    }
    // Before the socket opens: the node gives an idle socket only so long to join.
    const token = await this.#accessToken(options);
    this.#token = token;
    const { answer, signalUrl } = await this.#target(options, token);
    if (this.closed) throw new SignalError('CLOSED', 'the session closed while routing');
    this.#route = answer ?? undefined;
    this.safeEmit('routed', answer, signalUrl);
    try {
      await this.signal.connect(signalUrl);
    } catch (error) {
      throw new SignalError(
        'CLOSED',
        `cannot connect to ${signalUrl}: ${(error as Error).message}`,
      );
    }
    this.safeEmit('opened');
    const joined = await this.signal.join(token, { autoSubscribe: options.autoSubscribe ?? true });
    if (this.closed) throw new SignalError('CLOSED', 'the session closed while joining');
    this.#joined = joined;
    this.#roster.reset(joined.sessionId, joined.participants);
    this.#driver = this.#createDriver({
      joined,
      localCandidate: (target, candidate) => this.#trickle.local(target, candidate),
    });
    // Before the subscriber offers that waited for the join: a layer that publishes on
    // `joined` creates its publisher first, the order the bot has always had (its relay tests
    // lost a publisher's connection now and then with the subscriber first).
    this.safeEmit('joined', joined);
    this.#releaseQueue();
    return joined;
  }

  /**
   * Sends the publisher's offer; resolves with the server's answer. The server knows the
   * publisher from here on, so the candidates gathered meanwhile go out now. Call
   * `publisherAnswered` once the answer is applied. A busy node holds the first answer while
   * earlier connections are set up, for at most the `admissionTimeoutMs` of `joined`: the
   * wait for the answer is `timeoutMs` plus that.
   */
  publish(
    sdp: string,
    tracks: PublishTracks,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<ServerMessageOf<'publish.answer'>> {
    const answered = this.signal.request(
      { type: 'publish', sdp, tracks },
      'publish.answer',
      timeoutMs + (this.#joined?.admissionTimeoutMs ?? 0),
    );
    this.#trickle.publisherKnown();
    return answered;
  }

  /**
   * Tells the node how a remote video is shown (size in device pixels, visibility, pin), so
   * that it sends the layer that fits. Send it again whenever that changes.
   */
  updateSubscription(
    trackId: string,
    settings: { visible: boolean; width: number; height: number; pin?: SubscriptionPin },
  ): void {
    if (this.#joined && !this.closed)
      this.signal.send({ type: 'subscription.settings', trackId, ...settings });
  }

  /** The publisher has its remote description: the server's candidates can go in. */
  publisherAnswered(): Promise<void> {
    return this.#trickle.remoteDescriptionSet('publisher');
  }

  /**
   * Sends `leave` (when joined), closes the websocket and the PeerConnections; no event is
   * emitted after this. Idempotent: later calls return the first call's promise.
   */
  close(code = 1000, reason = 'client closed'): Promise<void> {
    if (this.#closing === undefined) this.#closing = this.#shutdown(code, reason);
    return this.#closing;
  }

  async #shutdown(code: number, reason: string): Promise<void> {
    // Queued subscriber work sees `closed` and stops; a join that never finished never
    // released the queue, so release it here.
    this.#releaseQueue();
    // Not joined: a `leave` would only earn a NOT_JOINED error.
    this.signal.close(code, reason, this.#joined !== undefined);
    await this.#driver?.close();
  }

  async #accessToken(options: ConnectOptions): Promise<string> {
    const { token, room, identity, name, url, region, node } = options;
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

  async #target(
    options: ConnectOptions,
    token: string,
  ): Promise<{ answer: RouteAnswer | null; signalUrl: string }> {
    if (options.route === false) return { answer: null, signalUrl: signalUrlFor(options.url) };
    try {
      const answer = await route(options.url, token, {
        room: options.room,
        region: options.region,
        node: options.node,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
      return { answer, signalUrl: answer.signalUrl };
    } catch (error) {
      const unreachable = error instanceof SignalError && error.code === 'SERVICE_UNAVAILABLE';
      if (!(options.directIfUnreachable && unreachable)) throw error;
      return { answer: null, signalUrl: signalUrlFor(options.url) };
    }
  }

  #enqueue(task: (driver: D) => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      const driver = this.#driver;
      if (this.closed || !driver) return;
      try {
        await task(driver);
      } catch (error) {
        if (!this.closed) this.safeEmit('subscribeFailed', error);
      }
    });
  }

  #listen(): void {
    const s = this.signal;
    const live = () => !this.closed;
    s.on('subscriber.offer', (m) => {
      this.#enqueue(async (driver) => {
        // Before the remote description: the browser's `track` events read the mapping.
        this.#subscribed = [...m.tracks];
        await driver.applySubscriberOffer(m.sdp, m.tracks);
        await this.#trickle.remoteDescriptionSet('subscriber');
        const sdp = await driver.answerSubscriber();
        if (this.closed) return;
        this.signal.send({ type: 'subscriber.answer', sdp });
        this.safeEmit('subscribed', m.tracks);
      });
    });
    s.on('trickle', (m) => {
      if (live()) this.#trickle.remote(m.target, m.candidate);
    });
    s.on('participant.joined', (m) => {
      if (live() && this.#roster.join(m.participant)) {
        this.safeEmit(
          'participantJoined',
          this.#roster.get(m.participant.sessionId) ?? m.participant,
        );
      }
    });
    s.on('participant.left', (m) => {
      if (!live()) return;
      const known = this.#roster.leave(m.sessionId);
      const { sessionId, identity, reason } = m;
      this.safeEmit('participantLeft', { sessionId, identity, reason }, known);
    });
    s.on('track.published', (m) => {
      if (!live()) return;
      this.#roster.publish(m.participantSid, m.track);
      this.safeEmit('trackPublished', m.participantSid, m.track);
    });
    s.on('track.unpublished', (m) => {
      if (!live()) return;
      this.#roster.unpublish(m.participantSid, m.trackId);
      this.safeEmit('trackUnpublished', m.participantSid, m.trackId);
    });
    s.on('track.muted', (m) => {
      if (!live()) return;
      this.#roster.mute(m.participantSid, m.trackId, m.muted);
      this.safeEmit('trackMuted', m.participantSid, m.trackId, m.muted);
    });
    s.on('publication.layers', (m) => {
      if (live()) this.safeEmit('layersRequested', m.trackId, m.active);
    });
    s.on('subscription.layer', (m) => {
      if (live()) this.safeEmit('subscriptionLayer', m.trackId, m);
    });
    s.on('permissions', (m) => {
      if (live())
        this.safeEmit('permissions', {
          canPublish: m.canPublish,
          canSubscribe: m.canSubscribe,
          canChat: m.canChat,
        });
    });
    s.on('participant.updated', (m) => {
      if (!live()) return;
      const known = this.#roster.get(m.participant.sessionId);
      // Its tracks are the roster's (the update carries the sender's view of them).
      if (known) this.#roster.join({ ...m.participant, tracks: known.tracks });
      this.safeEmit('participantUpdated', m.participant);
    });
    s.on('data', (m) => {
      if (live()) this.safeEmit('data', { payload: m.payload, topic: m.topic, ts: m.ts });
    });
    s.on('chat', (m) => {
      if (live()) this.safeEmit('chat', { from: m.from, text: m.text, ts: m.ts });
    });
    s.on('error', (m) => {
      if (live()) this.safeEmit('serverError', { code: m.code, message: m.message });
    });
    s.on('leave', (m) => {
      if (!live()) return;
      if (m.reason === 'draining') this.#reconnectUrl = m.reconnect?.url;
      this.safeEmit('leave', m.reason, m.reconnect?.url);
    });
    s.on('close', (info) => {
      if (live()) this.safeEmit('disconnected', info);
    });
  }
}
