/**
 * One visit to a room: the signalling client, the publisher PeerConnection (we offer) and the
 * subscriber PeerConnection (the server offers), and the state of everyone else in the room.
 * The UI listens to its events and reads its state; it knows nothing about the DOM.
 */
import type {
  IceCandidate,
  IceServer,
  LeaveReason,
  ParticipantInfo,
  PeerTarget,
  ServerMessageOf,
  StreamStats,
  SubscribedTrack,
  TrackInfo,
} from '@geosfu/common/protocol';
import { type RouteAnswer, route } from '../route.js';
import { SignalClient, SignalError, signalUrlFor, type WebSocketLike } from '../SignalClient.js';

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
};

/** The server's token endpoint answers `{token}` or an error object; read both defensively. */
async function fetchDevToken(baseUrl: string, options: JoinOptions): Promise<string> {
  const response = await fetch(new URL('/v1/dev/token', baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      room: options.room,
      identity: options.identity,
      name: options.name,
      // Pinning is refused (PERMISSION_DENIED) without this grant.
      ...(options.region || options.node ? { canPinRegion: true } : {}),
    }),
  });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  if (response.ok && typeof record.token === 'string') return record.token;
  const error =
    typeof record.error === 'object' && record.error !== null
      ? (record.error as Record<string, unknown>)
      : record;
  const message = typeof error.message === 'string' ? error.message : text.slice(0, 200);
  if (response.status === 404) {
    throw new Error(
      'This server does not hand out demo tokens (POST /v1/dev/token answered 404). Start it with --dev.',
    );
  }
  throw new Error(
    `Could not get a token (HTTP ${response.status}): ${message || response.statusText}`,
  );
}

function toCandidateInit(candidate: IceCandidate): RTCIceCandidateInit {
  return {
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid ?? null,
    sdpMLineIndex: candidate.sdpMLineIndex ?? null,
    usernameFragment: candidate.usernameFragment ?? null,
  };
}

function errorText(error: unknown): string {
  if (error instanceof SignalError) return `${error.message} (${error.code})`;
  if (error instanceof DOMException && error.name === 'NotAllowedError') {
    return 'Camera and microphone access was denied.';
  }
  return error instanceof Error ? error.message : String(error);
}

/** A PeerConnection with its pending remote candidates (they wait for the remote description). */
interface Peer {
  readonly target: PeerTarget;
  readonly pc: RTCPeerConnection;
  pendingRemote: RTCIceCandidateInit[];
  /** Local candidates wait until the server knows this PeerConnection (publisher only). */
  pendingLocal: RTCIceCandidateInit[] | null;
}

export class Session {
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
  readonly peers = new Map<string, RemotePeer>();
  readonly local: LocalMedia = Session.#emptyLocal();

  #signal: SignalClient | null = null;
  #publisher: Peer | null = null;
  #subscriber: Peer | null = null;
  /** Which remote track each m-line of the last subscriber offer carries. */
  #subscribedByMid = new Map<string, SubscribedTrack>();
  /** Subscriber negotiations run one after another. */
  #subscriberChain: Promise<void> = Promise.resolve();
  #iceServers: RTCIceServer[] = [];
  /** Chat texts we sent that the server has not echoed yet (we show them at once). */
  #unconfirmedChat: string[] = [];
  #watchedTracks = new WeakSet<MediaStreamTrack>();
  #listeners = new Map<keyof SessionEvents, Set<(...args: never[]) => void>>();
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
    };
  }

  get publisherPc(): RTCPeerConnection | null {
    return this.#publisher?.pc ?? null;
  }

  get subscriberPc(): RTCPeerConnection | null {
    return this.#subscriber?.pc ?? null;
  }

  /**
   * The node's view of this participant's streams (the `stats` request): what it receives
   * from us (inbound) and sends to us (outbound). Null when not joined.
   */
  async nodeStats(): Promise<StreamStats[] | null> {
    const signal = this.#signal;
    if (this.state !== 'joined' || !signal?.connected) return null;
    const reply = await signal.request({ type: 'stats' }, 'stats', NODE_STATS_TIMEOUT_MS);
    return reply.streams;
  }

  /** The server's mid -> track mapping of the current subscriber offer. */
  get subscribedTracks(): SubscribedTrack[] {
    return [...this.#subscribedByMid.values()];
  }

  on<K extends keyof SessionEvents>(event: K, listener: (...args: SessionEvents[K]) => void): void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (...args: never[]) => void);
  }

  #emit<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      (listener as (...a: SessionEvents[K]) => void)(...args);
    }
  }

  #setState(state: SessionState, detail: string | null = null): void {
    this.state = state;
    this.detail = detail;
    this.#emit('state', state, detail);
    this.#emit('change');
  }

  #notice(level: Notice['level'], text: string): void {
    this.#emit('notice', { level, text });
  }

  #system(text: string): void {
    this.#emit('chat', { kind: 'system', text, ts: Date.now() });
  }

  // ---------------------------------------------------------------------------------------
  // Joining and leaving
  // ---------------------------------------------------------------------------------------

  async join(options: JoinOptions): Promise<void> {
    if (this.state === 'joining' || this.state === 'joined') return;
    const epoch = ++this.#epoch;
    const baseUrl = options.baseUrl ?? location.origin;
    this.room = options.room;
    this.identity = options.identity;
    this.name = options.name;
    this.#joinOptions = options;
    this.#setState('joining');
    try {
      const media = await this.#openLocalMedia();
      if (epoch !== this.#epoch) {
        for (const track of media?.getTracks() ?? []) track.stop();
        return;
      }
      this.#setLocalStream(media);

      const token = await fetchDevToken(baseUrl, options);
      if (epoch !== this.#epoch) return;
      this.#token = token;
      // Any node (or the directory) tells us which node to use: the nearest, or the pinned one.
      const answer = await route(baseUrl, token, {
        room: options.room,
        region: options.region,
        node: options.node,
      });
      if (epoch !== this.#epoch) return;
      await this.#connect({ signalUrl: answer.signalUrl, answer }, token, media, epoch);
    } catch (error) {
      if (epoch !== this.#epoch) return;
      this.#teardown();
      this.#setState('error', errorText(error));
    }
  }

  /** Opens the websocket to the (routed) node, joins, and publishes `media`. */
  async #connect(
    target: { signalUrl: string; answer: RouteAnswer | null },
    token: string,
    media: MediaStream | null,
    epoch: number,
  ): Promise<void> {
    const { answer } = target;
    this.route = answer;
    this.nodeId = answer?.nodeId ?? null;
    this.region = answer?.region ?? null;
    this.#emit('change');
    const signal = new SignalClient((url) => new WebSocket(url) as unknown as WebSocketLike);
    this.#signal = signal;
    this.#listen(signal, epoch);
    await signal.connect(target.signalUrl);
    const joined = await signal.join(token);
    if (epoch !== this.#epoch) return;
    this.#onJoined(joined);
    if (media && joined.grants.canPublish) {
      // A failed publish leaves the session up: the others can still be seen and heard.
      await this.#publish(media, epoch).catch((error: unknown) => {
        if (epoch !== this.#epoch) return;
        this.#notice('error', `Could not send your camera and microphone: ${errorText(error)}`);
      });
    } else if (media) {
      this.#notice('info', 'Your token does not allow publishing: you can watch and listen only.');
    }
  }

  /**
   * The node is draining and named another one: join the room again through `/v1/route` on
   * `reconnectUrl`, keeping the camera and microphone. One attempt: if it fails, the session
   * ends with the reason. A node pin is dropped (that node is the one going away); a region
   * pin is kept.
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
      let answer: RouteAnswer | null = null;
      let signalUrl: string;
      try {
        answer = await route(reconnectUrl, token, { room: options.room, region: options.region });
        signalUrl = answer.signalUrl;
      } catch (error) {
        // A page may read another origin's answer only when that node allows it (CORS), and
        // the draining node is about to go. Websockets have no such rule, and the draining node
        // chose this node itself: join it directly (its region shows once joined).
        if (!(error instanceof SignalError && error.code === 'SERVICE_UNAVAILABLE')) throw error;
        signalUrl = signalUrlFor(reconnectUrl);
      }
      if (epoch !== this.#epoch) return;
      const where = answer?.region ?? new URL(reconnectUrl).host;
      this.movingTo = where;
      this.#notice('info', `Node is draining: moving you to ${where}...`);
      this.#system(`This server is being drained: moving you to ${where}.`);
      await this.#connect({ signalUrl, answer }, token, media, epoch);
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
        this.#emit('change');
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

  #teardown({ keepMedia = false }: { keepMedia?: boolean } = {}): void {
    this.#signal?.close(1000, 'leave');
    this.#signal = null;
    for (const peer of [this.#publisher, this.#subscriber]) peer?.pc.close();
    this.#publisher = null;
    this.#subscriber = null;
    this.#subscribedByMid.clear();
    this.#subscriberChain = Promise.resolve();
    this.#unconfirmedChat = [];
    if (keepMedia) {
      // The tracks go on to the next node's publisher; the server ids were this node's.
      this.local.audioTrackId = null;
      this.local.videoTrackId = null;
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

  async #openLocalMedia(): Promise<MediaStream | null> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.#notice('warn', 'This browser cannot capture media here (it needs https or localhost).');
      return null;
    }
    const video: MediaTrackConstraints = {
      width: { ideal: 960 },
      height: { ideal: 540 },
      frameRate: { ideal: 24, max: 30 },
    };
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video });
    } catch (error) {
      // No camera, or the camera is busy: try the microphone alone, then nothing at all.
      try {
        const audioOnly = await navigator.mediaDevices.getUserMedia({ audio: true });
        this.#notice('warn', `No camera (${errorText(error)}). Joining with microphone only.`);
        return audioOnly;
      } catch {
        this.#notice(
          'warn',
          `No camera or microphone (${errorText(error)}). Joining to watch only.`,
        );
        return null;
      }
    }
  }

  #setLocalStream(stream: MediaStream | null): void {
    this.local.stream = stream;
    this.local.audio = stream?.getAudioTracks()[0] ?? null;
    this.local.video = stream?.getVideoTracks()[0] ?? null;
    if (this.local.audio) this.local.audio.enabled = !this.local.micMuted;
    if (this.local.video) this.local.video.enabled = !this.local.camMuted;
    this.#emit('change');
  }

  #onJoined(joined: ServerMessageOf<'joined'>): void {
    this.sessionId = joined.sessionId;
    // The node itself has the last word on who it is.
    this.nodeId = joined.nodeId;
    this.region = joined.region;
    this.#iceServers = joined.iceServers.map((s: IceServer) => ({ ...s }));
    for (const info of joined.participants) this.#addPeer(info);
    this.#ensureSubscriber();
    this.#setState('joined');
    this.#system(`You joined room “${joined.room}” on ${joined.region} · ${joined.nodeId}.`);
  }

  // ---------------------------------------------------------------------------------------
  // Signalling events
  // ---------------------------------------------------------------------------------------

  #listen(signal: SignalClient, epoch: number): void {
    const live = () => epoch === this.#epoch;
    signal.on('subscriber.offer', (m) => {
      if (!live()) return;
      this.#subscriberChain = this.#subscriberChain
        .then(() => this.#answerSubscriber(m, epoch))
        .catch((error: unknown) => {
          if (live()) this.#notice('error', `Could not receive media: ${errorText(error)}`);
        });
    });
    signal.on('trickle', (m) => {
      if (!live()) return;
      const peer = m.target === 'publisher' ? this.#publisher : this.#subscriber;
      if (!peer) return;
      if (m.candidate === null) return; // end of candidates: nothing to do
      this.#addRemoteCandidate(peer, toCandidateInit(m.candidate));
    });
    signal.on('participant.joined', (m) => {
      if (!live() || m.participant.sessionId === this.sessionId) return;
      this.#addPeer(m.participant);
      this.#system(`${m.participant.name || m.participant.identity} joined.`);
      this.#emit('change');
    });
    signal.on('participant.left', (m) => {
      if (!live()) return;
      const peer = this.peers.get(m.sessionId);
      if (!peer) return;
      this.peers.delete(m.sessionId);
      const why = m.reason === 'left' ? '' : ` (${m.reason})`;
      this.#system(`${peer.name || peer.identity} left${why}.`);
      this.#emit('change');
    });
    signal.on('track.published', (m) => {
      if (!live()) return;
      this.peers.get(m.participantSid)?.tracks.set(m.track.trackId, m.track);
      this.#emit('change');
    });
    signal.on('track.unpublished', (m) => {
      if (!live()) return;
      const peer = this.peers.get(m.participantSid);
      if (!peer) return;
      peer.tracks.delete(m.trackId);
      if (peer.video?.trackId === m.trackId) peer.video = null;
      if (peer.audio?.trackId === m.trackId) peer.audio = null;
      this.#emit('change');
    });
    signal.on('track.muted', (m) => {
      if (!live()) return;
      const track = this.peers.get(m.participantSid)?.tracks.get(m.trackId);
      if (track) track.muted = m.muted;
      this.#emit('change');
    });
    signal.on('chat', (m) => {
      if (!live()) return;
      const self = m.from.sessionId === this.sessionId;
      if (self) {
        const i = this.#unconfirmedChat.indexOf(m.text);
        if (i >= 0) {
          this.#unconfirmedChat.splice(i, 1);
          return; // already shown when we sent it
        }
      }
      const name = m.from.name || m.from.identity;
      this.#emit('chat', {
        kind: 'chat',
        self,
        name,
        identity: m.from.identity,
        text: m.text,
        ts: m.ts,
      });
    });
    signal.on('leave', (m) => {
      if (!live()) return;
      if (m.reason === 'draining' && m.reconnect?.url && this.state === 'joined') {
        void this.#moveAfterDrain(m.reconnect.url);
        return;
      }
      this.#epoch++;
      this.#teardown();
      const text = LEAVE_TEXT[m.reason] ?? `The server ended the session (${m.reason}).`;
      this.#setState('left', text);
    });
    signal.on('error', (m) => {
      if (!live()) return;
      this.#notice('error', `${m.message} (${m.code})`);
    });
    signal.on('close', (info) => {
      if (!live()) return;
      // A close we did not ask for, and no `leave` came first: the connection is gone.
      if (this.state !== 'joined') return;
      this.#epoch++;
      this.#teardown();
      const reason = info.reason ? `: ${info.reason}` : '';
      this.#setState('error', `Lost the connection to the server (${info.code}${reason}).`);
    });
  }

  #addPeer(info: ParticipantInfo): void {
    if (info.sessionId === this.sessionId) return;
    const existing = this.peers.get(info.sessionId);
    if (existing) {
      existing.name = info.name;
      for (const track of info.tracks) existing.tracks.set(track.trackId, track);
      return;
    }
    this.peers.set(info.sessionId, {
      sessionId: info.sessionId,
      identity: info.identity,
      name: info.name,
      tracks: new Map(info.tracks.map((t) => [t.trackId, { ...t }])),
      video: null,
      audio: null,
    });
  }

  // ---------------------------------------------------------------------------------------
  // PeerConnections
  // ---------------------------------------------------------------------------------------

  #createPeer(target: PeerTarget): Peer {
    const pc = new RTCPeerConnection({ iceServers: this.#iceServers, bundlePolicy: 'max-bundle' });
    const peer: Peer = {
      target,
      pc,
      pendingRemote: [],
      pendingLocal: target === 'publisher' ? [] : null,
    };
    pc.onicecandidate = (event) => {
      const candidate = event.candidate?.toJSON() ?? null;
      if (candidate === null) return;
      if (peer.pendingLocal) peer.pendingLocal.push(candidate);
      else this.#sendCandidate(target, candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.state === 'joined') {
        this.#notice('error', `The ${target} media connection failed (ICE could not connect).`);
      }
      this.#emit('change');
    };
    return peer;
  }

  #sendCandidate(target: PeerTarget, candidate: RTCIceCandidateInit): void {
    if (!candidate.candidate) return;
    try {
      this.#signal?.send({
        type: 'trickle',
        target,
        candidate: {
          candidate: candidate.candidate,
          sdpMid: candidate.sdpMid ?? null,
          sdpMLineIndex: candidate.sdpMLineIndex ?? null,
          usernameFragment: candidate.usernameFragment ?? null,
        },
      });
    } catch {
      // The socket is closing: the session is ending anyway.
    }
  }

  #addRemoteCandidate(peer: Peer, candidate: RTCIceCandidateInit): void {
    if (!peer.pc.remoteDescription) {
      peer.pendingRemote.push(candidate);
      return;
    }
    peer.pc.addIceCandidate(candidate).catch((error: unknown) => {
      this.#notice('warn', `Ignored a bad ICE candidate from the server: ${errorText(error)}`);
    });
  }

  async #flushRemoteCandidates(peer: Peer): Promise<void> {
    const pending = peer.pendingRemote;
    peer.pendingRemote = [];
    for (const candidate of pending) {
      await peer.pc.addIceCandidate(candidate).catch(() => undefined);
    }
  }

  #ensureSubscriber(): Peer {
    if (this.#subscriber) return this.#subscriber;
    const peer = this.#createPeer('subscriber');
    peer.pc.ontrack = () => this.#syncRemoteMedia();
    this.#subscriber = peer;
    return peer;
  }

  async #answerSubscriber(
    offer: ServerMessageOf<'subscriber.offer'>,
    epoch: number,
  ): Promise<void> {
    const peer = this.#ensureSubscriber();
    this.#subscribedByMid = new Map(offer.tracks.map((t) => [t.mid, t]));
    await peer.pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await this.#flushRemoteCandidates(peer);
    const answer = await peer.pc.createAnswer();
    await peer.pc.setLocalDescription(answer);
    if (epoch !== this.#epoch) return;
    const sdp = peer.pc.localDescription?.sdp ?? answer.sdp;
    if (!sdp) throw new Error('the browser produced an empty answer');
    this.#signal?.send({ type: 'subscriber.answer', sdp });
    this.#syncRemoteMedia();
  }

  /** Places every receiving transceiver's track on the participant its m-line belongs to. */
  #syncRemoteMedia(): void {
    const pc = this.#subscriber?.pc;
    for (const peer of this.peers.values()) {
      peer.video = null;
      peer.audio = null;
    }
    if (!pc) return;
    for (const transceiver of pc.getTransceivers()) {
      const mid = transceiver.mid;
      if (mid === null) continue;
      const info = this.#subscribedByMid.get(mid);
      if (!info) continue;
      const direction = transceiver.currentDirection ?? transceiver.direction;
      if (direction !== 'recvonly' && direction !== 'sendrecv') continue;
      let peer = this.peers.get(info.participantSid);
      if (!peer) {
        // The offer can come before the participant.joined event: show them already.
        this.#addPeer({
          sessionId: info.participantSid,
          identity: info.identity,
          name: info.identity,
          joinedAt: Date.now(),
          nodeId: '',
          region: '',
          tracks: [],
        });
        peer = this.peers.get(info.participantSid);
        if (!peer) continue;
      }
      const track = transceiver.receiver.track;
      this.#watch(track);
      const slot = { track, trackId: info.trackId, mid };
      if (info.kind === 'video') peer.video = slot;
      else peer.audio = slot;
    }
    this.#emit('change');
  }

  /** Re-render when a remote track starts or stops flowing (its `muted` flag). */
  #watch(track: MediaStreamTrack): void {
    if (this.#watchedTracks.has(track)) return;
    this.#watchedTracks.add(track);
    track.addEventListener('mute', () => this.#emit('change'));
    track.addEventListener('unmute', () => this.#emit('change'));
  }

  async #publish(stream: MediaStream, epoch: number): Promise<void> {
    const signal = this.#signal;
    if (!signal) return;
    const peer = this.#createPeer('publisher');
    this.#publisher = peer;
    const sent: { transceiver: RTCRtpTransceiver; kind: 'audio' | 'video' }[] = [];
    for (const track of [...stream.getAudioTracks(), ...stream.getVideoTracks()]) {
      const transceiver = peer.pc.addTransceiver(track, {
        direction: 'sendonly',
        streams: [stream],
      });
      sent.push({ transceiver, kind: track.kind === 'audio' ? 'audio' : 'video' });
    }
    await peer.pc.setLocalDescription(await peer.pc.createOffer());
    const sdp = peer.pc.localDescription?.sdp;
    if (!sdp || epoch !== this.#epoch) return;
    const tracks = sent.map(({ transceiver, kind }) => ({
      mid: transceiver.mid ?? '',
      kind,
      source: kind === 'audio' ? ('microphone' as const) : ('camera' as const),
    }));
    const answered = signal.request(
      { type: 'publish', sdp, tracks },
      'publish.answer',
      PUBLISH_TIMEOUT_MS,
    );
    // The server knows the publisher now: send the candidates gathered meanwhile, then trickle.
    const early = peer.pendingLocal ?? [];
    peer.pendingLocal = null;
    for (const candidate of early) this.#sendCandidate('publisher', candidate);

    const answer = await answered;
    if (epoch !== this.#epoch) return;
    await peer.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    await this.#flushRemoteCandidates(peer);
    for (const { mid, trackId } of answer.tracks) {
      const kind = tracks.find((t) => t.mid === mid)?.kind;
      if (kind === 'audio') this.local.audioTrackId = trackId;
      if (kind === 'video') this.local.videoTrackId = trackId;
    }
    // Mute toggles made while publishing was under way: tell the server now.
    if (this.local.micMuted) this.#sendMute(this.local.audioTrackId, true);
    if (this.local.camMuted) this.#sendMute(this.local.videoTrackId, true);
    this.#emit('change');
  }

  // ---------------------------------------------------------------------------------------
  // Controls
  // ---------------------------------------------------------------------------------------

  setMicMuted(muted: boolean): void {
    this.local.micMuted = muted;
    if (this.local.audio) this.local.audio.enabled = !muted;
    this.#sendMute(this.local.audioTrackId, muted);
    this.#emit('change');
  }

  setCamMuted(muted: boolean): void {
    this.local.camMuted = muted;
    if (this.local.video) this.local.video.enabled = !muted;
    this.#sendMute(this.local.videoTrackId, muted);
    this.#emit('change');
  }

  #sendMute(trackId: string | null, muted: boolean): void {
    if (trackId === null || !this.#signal?.connected) return;
    this.#signal.send({ type: 'mute', trackId, muted });
  }

  /** Sends a chat message; returns false when it could not be sent. */
  sendChat(text: string): boolean {
    const trimmed = text.trim();
    if (!trimmed || !this.#signal?.connected) return false;
    try {
      this.#signal.send({ type: 'chat', text: trimmed });
    } catch {
      return false;
    }
    this.#unconfirmedChat.push(trimmed);
    this.#emit('chat', {
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
    return this.#subscribedByMid.get(mid)?.participantSid ?? null;
  }
}
