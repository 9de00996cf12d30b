/**
 * One visit to a room as the page shows it: local media, the other participants with the
 * media we receive from them, chat lines and notices. The protocol (token, route, join,
 * roster, subscriber offers, candidates) is a ClientSession's, one per node connection; the
 * PeerConnections are a BrowserDriver's. The UI listens to its events and reads its state;
 * it knows nothing about the DOM.
 */
import { TypedEmitter } from '@geosfu/common/events';
import type {
  LeaveReason,
  ServerMessageOf,
  StreamStats,
  SubscribedTrack,
  TrackInfo,
} from '@geosfu/common/protocol';
import { ClientSession, type ConnectOptions } from '../core/ClientSession.js';
import type { RouteAnswer } from '../core/route.js';
import type { WebSocketLike } from '../core/SignalClient.js';
import { BrowserDriver } from './BrowserDriver.js';
import { captureMedia, errorText } from './captureMedia.js';
import { RemoteVideos } from './RemoteVideos.js';
import { SimulcastSender } from './SimulcastSender.js';

export type SessionState = 'idle' | 'joining' | 'joined' | 'left' | 'error';

/** Someone else in the room, with the media we receive from them. */
export interface RemotePeer {
  readonly sessionId: string;
  readonly identity: string;
  name: string;
  /** Their published tracks, by trackId (as the server announced them). */
  readonly tracks: Map<string, TrackInfo>;
  /** The tracks we receive from them right now (from the subscriber PeerConnection). */
  video: { track: MediaStreamTrack; trackId: string; mid: string } | null;
  audio: { track: MediaStreamTrack; trackId: string; mid: string } | null;
}

export interface LocalMedia {
  stream: MediaStream | null;
  audio: MediaStreamTrack | null;
  video: MediaStreamTrack | null;
  micMuted: boolean;
  camMuted: boolean;
  /** Server track ids, known once the publish is answered. */
  audioTrackId: string | null;
  videoTrackId: string | null;
  /** The camera's layers when it is sent as simulcast (null: one layer, or not published). */
  simulcast: SimulcastSender | null;
}

export type ChatLine =
  | { kind: 'chat'; self: boolean; name: string; identity: string; text: string; ts: number }
  | { kind: 'system'; text: string; ts: number };

export interface Notice {
  level: 'info' | 'warn' | 'error';
  text: string;
}

type SessionEvents = {
  state: [state: SessionState, detail: string | null];
  /** Participants, their tracks or the local media changed: re-render. */
  change: [];
  chat: [line: ChatLine];
  notice: [notice: Notice];
};

export interface JoinOptions {
  room: string;
  name: string;
  identity: string;
  /** Where to get the dev token and the route: a node or the directory (default: this page's origin). */
  baseUrl?: string;
  /** Pin a region (`?region=`); the dev token then carries the `canPinRegion` grant. */
  region?: string;
  /**
   * An access token from the application's backend (`?token=`): how the page joins a node
   * outside dev mode. Without one it asks the node's dev endpoint (dev nodes only).
   */
  token?: string;
  /** Pin a node id (`?node=`); not together with `region`. */
  node?: string;
}

const PUBLISH_TIMEOUT_MS = 20_000;
/** The node answers a `stats` request at once; a slower answer is stale anyway. */
const NODE_STATS_TIMEOUT_MS = 4_000;

const LEAVE_TEXT: Record<LeaveReason, string> = {
  left: 'You left the room.',
  disconnected: 'You were disconnected.',
  'heartbeat-timeout': 'The server stopped hearing from this page (heartbeat timeout).',
  'peer-connection-failed': 'The media connection failed.',
  replaced: 'You joined this room again from another tab or device, so this one was closed.',
  'policy-violation': 'The server closed the session: too many invalid messages.',
  draining: 'This server is being drained for maintenance. Join again to continue on another one.',
  'node-died': 'The server this room was on went away.',
  'server-shutdown': 'The server shut down.',
  removed: 'The room’s owner removed you from the room.',
  'room-deleted': 'The room was closed by its owner.',
};

export class Session extends TypedEmitter<SessionEvents> {
  state: SessionState = 'idle';
  /** Why the session ended or failed, for the UI. */
  detail: string | null = null;
  sessionId: string | null = null;
  room: string | null = null;
  identity: string | null = null;
  name: string | null = null;
  /** The node this page is connected (or connecting) to, from `/v1/route` then `joined`. */
  nodeId: string | null = null;
  region: string | null = null;
  /** The route answer that chose the node (why, how far). */
  route: RouteAnswer | null = null;
  /** While moving off a draining node: the region of the node we move to. */
  movingTo: string | null = null;
  /** The others, rebuilt from the connection's roster and subscriber on every change. */
  readonly peers = new Map<string, RemotePeer>();
  readonly local: LocalMedia = Session.#emptyLocal();
  /** The remote videos' pins, received layers and the settings the node is told. */
  readonly videos = new RemoteVideos(() => this.safeEmit('change'));

  /** The connection to the current node; a new one for every join and every move. */
  #core: ClientSession<BrowserDriver> | null = null;
  /** Tracks unpublished since the last subscriber offer: their m-lines show nothing. */
  #unpublished = new Set<string>();
  /** Chat texts we sent that the server has not echoed yet (we show them at once). */
  #unconfirmedChat: string[] = [];
  #watchedTracks = new WeakSet<MediaStreamTrack>();
  /** Bumped on every join/leave so that stale async work can tell it is stale. */
  #epoch = 0;
  /** What the current visit joined with, for moving to another node when this one drains. */
  #joinOptions: JoinOptions | null = null;
  #token: string | null = null;

  static #emptyLocal(): LocalMedia {
    return {
      stream: null,
      audio: null,
      video: null,
      micMuted: false,
      camMuted: false,
      audioTrackId: null,
      videoTrackId: null,
      simulcast: null,
    };
  }

  get publisherPc(): RTCPeerConnection | null {
    return this.#core?.driver?.publisher ?? null;
  }

  get subscriberPc(): RTCPeerConnection | null {
    return this.#core?.driver?.subscriber ?? null;
  }

  /**
   * The node's view of this participant's streams (the `stats` request): what it receives
   * from us (inbound) and sends to us (outbound). Null when not joined.
   */
  async nodeStats(): Promise<StreamStats[] | null> {
    const signal = this.#core?.signal;
    if (this.state !== 'joined' || !signal?.connected) return null;
    const reply = await signal.request({ type: 'stats' }, 'stats', NODE_STATS_TIMEOUT_MS);
    return reply.streams;
  }

  /** The server's mid -> track mapping of the current subscriber offer. */
  get subscribedTracks(): SubscribedTrack[] {
    return this.#core?.subscribedTracks() ?? [];
  }

  #setState(state: SessionState, detail: string | null = null): void {
    this.state = state;
    this.detail = detail;
    this.safeEmit('state', state, detail);
    this.safeEmit('change');
  }

  #notice(level: Notice['level'], text: string): void {
    this.safeEmit('notice', { level, text });
  }

  #system(text: string): void {
    this.safeEmit('chat', { kind: 'system', text, ts: Date.now() });
  }

  // ---------------------------------------------------------------------------------------
  // Joining and leaving
  // ---------------------------------------------------------------------------------------

  async join(options: JoinOptions): Promise<void> {
    if (this.state === 'joining' || this.state === 'joined') return;
    const epoch = ++this.#epoch;
    this.room = options.room;
    this.identity = options.identity;
    this.name = options.name;
    this.#joinOptions = options;
    this.#setState('joining');
    try {
      const media = await captureMedia((level, text) => this.#notice(level, text));
      if (epoch !== this.#epoch) {
        for (const track of media?.getTracks() ?? []) track.stop();
        return;
      }
      this.#setLocalStream(media);
      // Any node (or the directory) tells us which node to use: the nearest, or the pinned one.
      const { room, identity, name, region, node, token } = options;
      const url = options.baseUrl ?? location.origin;
      await this.#connect({ url, room, identity, name, region, node, token }, media, epoch, false);
    } catch (error) {
      if (epoch !== this.#epoch) return;
      this.#teardown();
      this.#setState('error', errorText(error));
    }
  }

  /** Connects to the (routed) node through a new ClientSession, joins, publishes `media`. */
  async #connect(
    options: ConnectOptions,
    media: MediaStream | null,
    epoch: number,
    moving: boolean,
  ): Promise<void> {
    const core = new ClientSession({
      webSocket: (url) => new WebSocket(url) as unknown as WebSocketLike,
      driver: (context) =>
        new BrowserDriver(context, {
          track: () => {
            if (this.#core === core) this.#syncPeers();
          },
          connectionState: (target, state) => {
            if (this.#core !== core) return;
            if (state === 'failed' && this.state === 'joined') {
              this.#notice(
                'error',
                `The ${target} media connection failed (ICE could not connect).`,
              );
            }
            this.safeEmit('change');
          },
        }),
    });
    this.#core = core;
    this.videos.attach(core);
    core.on('routed', (answer) => {
      this.route = answer;
      this.nodeId = answer?.nodeId ?? null;
      this.region = answer?.region ?? null;
      if (moving) {
        const where = answer?.region ?? new URL(options.url).host;
        this.movingTo = where;
        this.#notice('info', `Node is draining: moving you to ${where}...`);
        this.#system(`This server is being drained: moving you to ${where}.`);
      }
      this.safeEmit('change');
    });
    this.#listen(core);
    const joined = await core.connect(options);
    if (epoch !== this.#epoch) return;
    this.#token = core.token ?? null;
    this.#onJoined(joined);
    if (media && joined.grants.canPublish) {
      // A failed publish leaves the session up: the others can still be seen and heard.
      await this.#publish(core, media, epoch).catch((error: unknown) => {
        if (epoch !== this.#epoch) return;
        this.#notice('error', `Could not send your camera and microphone: ${errorText(error)}`);
      });
    } else if (media) {
      this.#notice('info', 'Your token does not allow publishing: you can watch and listen only.');
    }
  }

  /**
   * The node is draining and named another one: join the room again through `/v1/route` on
   * `reconnectUrl` (or `reconnectUrl` itself when its route cannot be read), keeping the
   * camera and microphone. One attempt: if it fails, the session ends with the reason. A node
   * pin is dropped (that node is the one going away); a region pin is kept.
   */
  async #moveAfterDrain(reconnectUrl: string): Promise<void> {
    const options = this.#joinOptions;
    const token = this.#token;
    if (!options || !token) return;
    const epoch = ++this.#epoch;
    const media = this.local.stream;
    this.#teardown({ keepMedia: true });
    this.#setState('joining');
    try {
      const { room, region } = options;
      const target = { url: reconnectUrl, token, room, region, directIfUnreachable: true };
      await this.#connect(target, media, epoch, true);
    } catch (error) {
      if (epoch !== this.#epoch) return;
      this.#teardown();
      this.#setState(
        'left',
        `${LEAVE_TEXT.draining} Moving to another node failed: ${errorText(error)}`,
      );
    } finally {
      if (epoch === this.#epoch) {
        this.movingTo = null;
        this.safeEmit('change');
      }
    }
  }

  /** Leaves the room (best effort, synchronous enough for `pagehide`). */
  leave(): void {
    if (this.state !== 'joining' && this.state !== 'joined') return;
    this.#epoch++;
    this.#teardown();
    this.#setState('left', LEAVE_TEXT.left);
  }

  /** The session ended (the server said so, or the connection is gone). */
  #end(state: 'left' | 'error', text: string): void {
    this.#epoch++;
    this.#teardown();
    this.#setState(state, text);
  }

  #teardown({ keepMedia = false }: { keepMedia?: boolean } = {}): void {
    void this.#core?.close(1000, 'leave');
    this.#core = null;
    this.videos.detach();
    this.#unpublished.clear();
    this.#unconfirmedChat = [];
    if (keepMedia) {
      // The tracks go on to the next node's publisher; the server ids were this node's.
      this.local.audioTrackId = null;
      this.local.videoTrackId = null;
      this.local.simulcast = null;
    } else {
      for (const track of this.local.stream?.getTracks() ?? []) track.stop();
      Object.assign(this.local, Session.#emptyLocal());
    }
    this.peers.clear();
    this.sessionId = null;
    this.nodeId = null;
    this.region = null;
    this.route = null;
  }

  #setLocalStream(stream: MediaStream | null): void {
    this.local.stream = stream;
    this.local.audio = stream?.getAudioTracks()[0] ?? null;
    this.local.video = stream?.getVideoTracks()[0] ?? null;
    if (this.local.audio) this.local.audio.enabled = !this.local.micMuted;
    if (this.local.video) this.local.video.enabled = !this.local.camMuted;
    this.safeEmit('change');
  }

  #onJoined(joined: ServerMessageOf<'joined'>): void {
    this.sessionId = joined.sessionId;
    // The node itself has the last word on who it is.
    this.nodeId = joined.nodeId;
    this.region = joined.region;
    this.#syncPeers();
    this.#setState('joined');
    this.#system(`You joined room “${joined.room}” on ${joined.region} · ${joined.nodeId}.`);
  }

  // ---------------------------------------------------------------------------------------
  // Events of the connection
  // ---------------------------------------------------------------------------------------

  #listen(core: ClientSession<BrowserDriver>): void {
    const sync = () => this.#syncPeers();
    core.on('subscribed', () => {
      this.#unpublished.clear();
      sync();
    });
    core.on('subscribeFailed', (error) => {
      this.#notice('error', `Could not receive media: ${errorText(error)}`);
    });
    core.on('candidateRejected', (_target, error) => {
      this.#notice('warn', `Ignored a bad ICE candidate from the server: ${errorText(error)}`);
    });
    core.on('participantJoined', (p) => {
      this.#system(`${p.name || p.identity} joined.`);
      sync();
    });
    core.on('participantLeft', (left, known) => {
      if (!known) return;
      const why = left.reason === 'left' ? '' : ` (${left.reason})`;
      this.#system(`${known.name || known.identity} left${why}.`);
      sync();
    });
    core.on('trackPublished', sync);
    core.on('trackUnpublished', (_sid, trackId) => {
      this.#unpublished.add(trackId);
      sync();
    });
    core.on('trackMuted', sync);
    core.on('layersRequested', (trackId, rids) => {
      // Dynacast: the node says which of our camera's layers someone needs.
      const simulcast = this.local.simulcast;
      if (!simulcast || trackId !== this.local.videoTrackId) return;
      void simulcast.request(rids).then(() => this.safeEmit('change'));
    });
    core.on('chat', (m) => {
      const self = m.from.sessionId === this.sessionId;
      if (self) {
        const i = this.#unconfirmedChat.indexOf(m.text);
        if (i >= 0) {
          this.#unconfirmedChat.splice(i, 1);
          return; // already shown when we sent it
        }
      }
      const name = m.from.name || m.from.identity;
      const { identity } = m.from;
      this.safeEmit('chat', { kind: 'chat', self, name, identity, text: m.text, ts: m.ts });
    });
    core.on('leave', (reason, reconnectUrl) => {
      if (reason === 'draining' && reconnectUrl && this.state === 'joined') {
        void this.#moveAfterDrain(reconnectUrl);
        return;
      }
      this.#end('left', LEAVE_TEXT[reason] ?? `The server ended the session (${reason}).`);
    });
    core.on('serverError', (m) => this.#notice('error', `${m.message} (${m.code})`));
    core.on('disconnected', (info) => {
      // A close we did not ask for, and no `leave` came first: the connection is gone.
      if (this.state !== 'joined') return;
      const reason = info.reason ? `: ${info.reason}` : '';
      this.#end('error', `Lost the connection to the server (${info.code}${reason}).`);
    });
  }

  /**
   * Rebuilds `peers` from the roster, and places every receiving transceiver's track on the
   * participant its m-line belongs to.
   */
  #syncPeers(): void {
    const core = this.#core;
    this.peers.clear();
    for (const p of core?.participants() ?? []) {
      this.peers.set(p.sessionId, {
        sessionId: p.sessionId,
        identity: p.identity,
        name: p.name,
        tracks: new Map(p.tracks.map((t) => [t.trackId, t])),
        video: null,
        audio: null,
      });
    }
    const pc = core?.driver?.subscriber;
    const byMid = new Map((core?.subscribedTracks() ?? []).map((t) => [t.mid, t]));
    for (const transceiver of pc?.getTransceivers() ?? []) {
      const mid = transceiver.mid;
      const info = mid === null ? undefined : byMid.get(mid);
      if (mid === null || !info || this.#unpublished.has(info.trackId)) continue;
      const direction = transceiver.currentDirection ?? transceiver.direction;
      if (direction !== 'recvonly' && direction !== 'sendrecv') continue;
      let peer = this.peers.get(info.participantSid);
      if (!peer) {
        // The offer can come before the participant.joined event: show them already.
        peer = {
          sessionId: info.participantSid,
          identity: info.identity,
          name: info.identity,
          tracks: new Map(),
          video: null,
          audio: null,
        };
        this.peers.set(peer.sessionId, peer);
      }
      const track = transceiver.receiver.track;
      this.#watch(track);
      const slot = { track, trackId: info.trackId, mid };
      if (info.kind === 'video') peer.video = slot;
      else peer.audio = slot;
    }
    this.safeEmit('change');
  }

  /** Re-render when a remote track starts or stops flowing (its `muted` flag). */
  #watch(track: MediaStreamTrack): void {
    if (this.#watchedTracks.has(track)) return;
    this.#watchedTracks.add(track);
    track.addEventListener('mute', () => this.safeEmit('change'));
    track.addEventListener('unmute', () => this.safeEmit('change'));
  }

  async #publish(
    core: ClientSession<BrowserDriver>,
    stream: MediaStream,
    epoch: number,
  ): Promise<void> {
    const driver = core.driver;
    if (!driver) return;
    const published = await driver.publish(stream, (sdp, tracks) =>
      core.publish(sdp, tracks, PUBLISH_TIMEOUT_MS),
    );
    if (!published || epoch !== this.#epoch) return;
    for (const trackId of published.stale) core.signal.send({ type: 'unpublish', trackId });
    await core.publisherAnswered();
    if (published.audio) this.local.audioTrackId = published.audio;
    if (published.video) this.local.videoTrackId = published.video;
    if (published.simulcast) {
      const { sender, plan } = published.simulcast;
      this.local.simulcast = new SimulcastSender(sender, plan.layers, (error) =>
        this.#notice('warn', `Could not pause or resume a video layer: ${errorText(error)}`),
      );
    }
    // Mute toggles made while publishing was under way: tell the server now.
    if (this.local.micMuted) this.#sendMute(this.local.audioTrackId, true);
    if (this.local.camMuted) this.#sendMute(this.local.videoTrackId, true);
    this.safeEmit('change');
  }

  // ---------------------------------------------------------------------------------------
  // Controls
  // ---------------------------------------------------------------------------------------

  setMicMuted(muted: boolean): void {
    this.local.micMuted = muted;
    if (this.local.audio) this.local.audio.enabled = !muted;
    this.#sendMute(this.local.audioTrackId, muted);
    this.safeEmit('change');
  }

  setCamMuted(muted: boolean): void {
    this.local.camMuted = muted;
    if (this.local.video) this.local.video.enabled = !muted;
    this.#sendMute(this.local.videoTrackId, muted);
    this.safeEmit('change');
  }

  #sendMute(trackId: string | null, muted: boolean): void {
    const signal = this.#core?.signal;
    if (trackId === null || !signal?.connected) return;
    signal.send({ type: 'mute', trackId, muted });
  }

  /** Sends a chat message; returns false when it could not be sent. */
  sendChat(text: string): boolean {
    const trimmed = text.trim();
    const signal = this.#core?.signal;
    if (!trimmed || !signal?.connected) return false;
    try {
      signal.send({ type: 'chat', text: trimmed });
    } catch {
      return false;
    }
    this.#unconfirmedChat.push(trimmed);
    this.safeEmit('chat', {
      kind: 'chat',
      self: true,
      name: this.name ?? 'You',
      identity: this.identity ?? '',
      text: trimmed,
      ts: Date.now(),
    });
    return true;
  }

  /** The participant a subscriber m-line belongs to (for per-tile stats). */
  participantOfMid(mid: string): string | null {
    return this.subscribedTracks.find((t) => t.mid === mid)?.participantSid ?? null;
  }
}
