import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { fixWeriftDtls } from '@geosfu/client/bot';
import {
  type AccessToken,
  type ClientMessageOf,
  type LeaveReason,
  LIMITS,
  type Logger,
  type NodeConfig,
  requireLocation,
  type ServerMessage,
  SfuError,
  StallDetector,
  type StreamStats,
  type TokenService,
  TypedEmitter,
} from '@geosfu/common';
import {
  type ControlPlane,
  listenMetrics,
  type MetricsServer,
  type RoomEvent,
  type SessionRecord,
} from '@geosfu/registry';
import { type RelayBus, type RelayedTrack, RelayManager } from '@geosfu/relay';
import { type RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { WebSocketServer } from 'ws';
import { HandshakeGate } from './HandshakeGate.js';
import { createHttpApp, type HttpHost } from './httpApp.js';
import { relayReceiverPeerConfig, relaySenderPeerConfig } from './media.js';
import { NodeMetrics, type Path } from './metrics.js';
import { observeControlPlane } from './observePlane.js';
import { Participant } from './Participant.js';
import { Publication } from './Publication.js';
import { Room } from './Room.js';
import { relaySourceOf } from './relaySource.js';
import { SignalConnection, type SignalHost } from './SignalConnection.js';

export const VERSION: string = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

// A node is the DTLS server towards clients and relay senders, and a DTLS client on its own
// relay links: werift's handshakes on both sides fail for good after some losses (weriftDtls.ts).
fixWeriftDtls();

/** How often RTT, jitter and loss are sampled into the metrics. */
const STATS_INTERVAL_MS = 5_000;

export type NodeState = 'created' | 'active' | 'draining' | 'closed';

export type SfuNodeEvents = {
  /** A drain finished: every session was moved and the node deregistered. */
  drained: [];
  participantJoined: [Room, Participant];
  participantLeft: [Room, Participant, LeaveReason];
};

/**
 * One SFU node: the HTTP API, the signalling websocket, the local rooms and their media.
 * `start()` listens; `close()` ends every session (telling clients why) and frees every port.
 */
export class SfuNode extends TypedEmitter<SfuNodeEvents> implements SignalHost, HttpHost {
  readonly config: NodeConfig;
  readonly metrics: NodeMetrics;
  readonly tokens: TokenService;
  readonly stalls: StallDetector;
  #logger: Logger;
  #state: NodeState = 'created';
  #rooms = new Map<string, Room>();
  #connections = new Set<SignalConnection>();
  #bySession = new Map<string, SignalConnection>();
  #http: Server | undefined;
  /** The `/metrics`-only server on SFU_METRICS_PORT, when that is set. */
  #metricsServer: MetricsServer | undefined;
  #wss: WebSocketServer | undefined;
  #url: string | undefined;
  #watched = new Set<string>();
  #lastStats = new WeakMap<Participant, Map<string, { bytes: number; at: number }>>();
  /** Per receiving PeerConnection and SSRC: the highest cumulative `packetsLost` counted. */
  #lostCounted = new WeakMap<RTCPeerConnection, Map<number, number>>();

  readonly plane: ControlPlane;
  #loadTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;
  #cpuMark = { usage: process.cpuUsage(), at: performance.now(), bytesOut: 0 };
  #drained: Promise<void> | undefined;

  #bus: RelayBus | undefined;
  #relays: RelayManager | undefined;
  /** Admission control: PeerConnection set-ups in progress at once, the rest queue. */
  readonly #handshakes: HandshakeGate;

  /**
   * @param bus the relay signalling bus (cluster mode); without one, the node relays nothing
   *   (single-node mode, where every participant is here anyway).
   */
  constructor(config: NodeConfig, logger: Logger, plane: ControlPlane, bus?: RelayBus) {
    super((event, error) => logger.error({ err: error, event }, 'node listener threw'));
    this.config = config;
    this.plane = plane;
    this.#bus = bus;
    this.#logger = logger.child({
      component: 'node',
      nodeId: config.nodeId,
      region: config.region,
    });
    this.tokens = plane.tokens;
    this.stalls = new StallDetector((ms) => {
      this.metrics.stalls.inc();
      this.#logger.warn({ stalledMs: Math.round(ms) }, 'node stalled; liveness skips it');
    });
    this.#handshakes = new HandshakeGate({
      maxConcurrent: config.maxConcurrentHandshakes,
      timeoutMs: config.admissionTimeoutMs,
      holdMs: config.peerTimeoutMs,
      onWait: (seconds, result) => this.metrics.admissionWait.observe({ result }, seconds),
    });
    this.metrics = new NodeMetrics(
      { nodeId: config.nodeId, region: config.region, version: VERSION },
      {
        rooms: () => this.#rooms.size,
        participants: () => this.#bySession.size,
        handshakes: () => ({ active: this.#handshakes.active, waiting: this.#handshakes.waiting }),
        publishedTracks: (kind) =>
          this.#count((p) => [...p.publications.values()].filter((x) => x.kind === kind).length),
        subscriptions: (kind) =>
          this.#count(
            (p) => [...p.subscriptions.values()].filter((x) => x.publication.kind === kind).length,
          ),
        relayLinks: () => {
          const region = (id: string) => this.plane.registry.get(id)?.region ?? 'unknown';
          return [
            ...(this.#relays?.links ?? []).map((l) => ({
              peerRegion: region(l.remoteNode),
              direction: 'out' as const,
            })),
            ...(this.#relays?.receivers ?? []).map((r) => ({
              peerRegion: region(r.remoteNode),
              direction: 'in' as const,
            })),
          ];
        },
      },
    );
  }

  get nodeId(): string {
    return this.config.nodeId;
  }

  get region(): string {
    return this.config.region;
  }

  get state(): NodeState {
    return this.#state;
  }

  get version(): string {
    return VERSION;
  }

  get sessionCount(): number {
    return this.#bySession.size;
  }

  requestDrain(by: string): void {
    this.#logger.info({ by }, 'drain requested');
    void this.drain().then(() => this.safeEmit('drained'));
  }

  /** The base URL clients use: SFU_PUBLIC_URL, else the address the node listens on. */
  get url(): string {
    if (!this.#url) throw new SfuError('CLOSED', 'the node is not listening; call start() first');
    return this.#url;
  }

  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  #count(f: (p: Participant) => number): number {
    let n = 0;
    for (const room of this.#rooms.values()) for (const p of room.participants) n += f(p);
    return n;
  }

  async start(): Promise<{ url: string; port: number; metricsPort?: number }> {
    if (this.#state !== 'created')
      throw new SfuError('CLOSED', `cannot start a node that is ${this.#state}`);
    if (this.config.metricsPort !== undefined) {
      this.#metricsServer = await listenMetrics(
        this.metrics.registry,
        this.config.metricsPort,
        this.config.httpHost,
      );
    }
    const app = createHttpApp(this, this.#logger);
    const http = createServer(app);
    const wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.maxFrameBytes });
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path !== '/v1/signal') {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (this.#state !== 'active') {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const connection = new SignalConnection(
          ws,
          req.socket.remoteAddress ?? '',
          this,
          this.#logger,
        );
        this.#connections.add(connection);
        ws.once('close', () => this.#connections.delete(connection));
      });
    });
    this.#http = http;
    this.#wss = wss;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(this.config.httpPort, this.config.httpHost, () => {
        http.off('error', reject);
        resolve();
      });
    }).catch(async (error: unknown) => {
      await this.#metricsServer?.close();
      throw error;
    });
    const port = (http.address() as AddressInfo).port;
    const host =
      this.config.httpHost === '0.0.0.0' || this.config.httpHost === '::'
        ? 'localhost'
        : this.config.httpHost;
    this.#url = (
      this.config.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
    ).replace(/\/$/, '');
    await this.plane.registry.register({
      id: this.nodeId,
      region: this.region,
      ...requireLocation(this.config),
      url: this.#url,
      signalUrl: `${this.#url.replace(/^http/, 'ws')}/v1/signal`,
      state: 'active',
      capacity: this.config.capacity,
      load: this.#load(),
      version: VERSION,
      startedAt: Date.now(),
    });
    await this.#startRelays();
    this.#statsTimer = setInterval(() => {
      this.#sampleStats().catch((error: unknown) =>
        this.#logger.warn({ err: error }, 'stats sampling failed'),
      );
    }, STATS_INTERVAL_MS);
    observeControlPlane(this.plane, this.metrics, this.nodeId, this.#logger);
    this.plane.rooms.on('event', (room, event) => this.#onRoomEvent(room, event));
    this.plane.rooms.on('reconnected', () => void this.#reassert());
    this.#loadTimer = setInterval(() => {
      this.plane.registry.update({ load: this.#load() }).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'load update failed');
      });
    }, this.config.heartbeatMs);
    this.#state = 'active';
    return {
      url: this.#url,
      port,
      ...(this.#metricsServer ? { metricsPort: this.#metricsServer.port } : {}),
    };
  }

  /** Participants, tracks, CPU and forwarded bitrate since the previous call. */
  #load() {
    const now = performance.now();
    const usage = process.cpuUsage();
    const elapsedUs = Math.max(1, (now - this.#cpuMark.at) * 1000);
    const cpuUs = usage.user - this.#cpuMark.usage.user + usage.system - this.#cpuMark.usage.system;
    const bytesOut = this.#count((p) =>
      [...p.subscriptions.values()].reduce((n, s) => n + s.bytesOut, 0),
    );
    const bitrate = Math.max(0, ((bytesOut - this.#cpuMark.bytesOut) * 8) / (elapsedUs / 1e6));
    this.#cpuMark = { usage, at: now, bytesOut };
    return {
      participants: this.#bySession.size,
      publishedTracks: this.#count((p) => p.publications.size),
      cpu: Math.min(1, cpuUs / elapsedUs / Math.max(1, availableParallelism())),
      forwardedBitrate: Math.round(bitrate),
    };
  }

  // -------------------------------------------------------------------------------------
  // SignalHost
  // -------------------------------------------------------------------------------------

  async join(
    connection: SignalConnection,
    message: ClientMessageOf<'join'>,
  ): Promise<{ room: Room; participant: Participant; reply: ServerMessage }> {
    const startedAt = performance.now();
    if (this.#state !== 'active') {
      throw new SfuError(
        'NODE_DRAINING',
        'this node is not accepting joins; ask /v1/route for another',
      );
    }
    const token = await this.tokens.verify(message.token);
    for (;;) {
      const room = this.#roomFor(token.room);
      // Joins of one room run one at a time here; across nodes the store's lock orders them.
      const joined = await room
        .serialize(async () => {
          if (room.closed) return undefined; // retired while we waited: take the new one
          return this.#joinRoom(room, connection, message, token, startedAt);
        })
        .catch((error: unknown) => {
          // A room whose every join failed (ROOM_FULL, say) has no participant here: it must
          // not stay watched, with a view of the room that only events after the watch built.
          this.#retireIfUnused(room);
          throw error;
        });
      if (joined) return joined;
    }
  }

  async #joinRoom(
    room: Room,
    connection: SignalConnection,
    message: ClientMessageOf<'join'>,
    token: AccessToken,
    startedAt: number,
  ): Promise<{ room: Room; participant: Participant; reply: ServerMessage }> {
    const store = this.plane.rooms;
    if (!store.connected) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        'the cluster state (Redis) is unreachable; try again shortly',
      );
    }
    const previous = room.sessionOf(token.identity);
    if (!previous && this.#bySession.size >= this.config.capacity) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `this node is full (${this.config.capacity} participants); ask /v1/route for another`,
      );
    }
    if (!this.#watched.has(room.name)) {
      await store.watch(room.name);
      this.#watched.add(room.name);
    }
    const sessionId = `PA_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const record: SessionRecord = {
      sessionId,
      identity: token.identity,
      name: token.name,
      nodeId: this.nodeId,
      region: this.region,
      joinedAt: Date.now(),
      tracks: [],
    };
    // The store's lock makes this atomic across the cluster: the room limit, and one session
    // per identity (an older one, here or on another node, is replaced).
    const result = await store.join(room.name, record, {
      maxParticipants: this.config.maxParticipants,
    });
    if (this.#state !== 'active') {
      await store.leave(room.name, sessionId, 'draining').catch(() => undefined);
      throw new SfuError(
        'NODE_DRAINING',
        'this node is not accepting joins; ask /v1/route for another',
      );
    }
    if (result.replaced && result.replaced.nodeId !== this.nodeId) {
      // Our own store events are not echoed back to us, so apply this one here; the other
      // node gets it from the room's channel and ends that session.
      room.remoteLeft(result.replaced, 'replaced');
    }
    if (result.replaced?.nodeId === this.nodeId) {
      // The page-refresh case on this node: ending the old session removes it from the room
      // synchronously; its later socket close finds it already ended.
      void this.#bySession.get(result.replaced.sessionId)?.end('replaced');
    }
    for (const s of result.participants) {
      if (s.nodeId !== this.nodeId && s.sessionId !== sessionId) room.remoteJoined(s);
    }
    const participant = new Participant({
      sessionId,
      identity: token.identity,
      name: token.name,
      grants: token.grants,
      autoSubscribe: message.autoSubscribe ?? true,
      config: this.config,
      stalls: this.stalls,
      metrics: this.metrics,
      logger: this.#logger.child({ component: 'participant', sessionId, identity: token.identity }),
      send: (m) => connection.send(m),
      handshakes: this.#handshakes,
    });
    participant.once('firstMediaOut', () =>
      this.metrics.joinDuration.observe((performance.now() - startedAt) / 1000),
    );
    const others = room.infos();
    room.add(participant);
    this.#bySession.set(sessionId, connection);
    this.#relays?.reconcile(room.name);
    this.safeEmit('participantJoined', room, participant);
    this.#logger.info(
      { room: room.name, sessionId, identity: token.identity },
      'participant joined',
    );
    const reply: ServerMessage = {
      type: 'joined',
      ...(message.id ? { ref: message.id } : {}),
      sessionId,
      room: room.name,
      nodeId: this.nodeId,
      region: this.region,
      participant: participant.info(this.nodeId, this.region),
      participants: others,
      iceServers: [...this.config.iceServers],
      grants: { canPublish: token.grants.canPublish, canSubscribe: token.grants.canSubscribe },
      pingIntervalMs: this.config.pingIntervalMs,
      pingTimeoutMs: this.config.pingTimeoutMs,
      admissionTimeoutMs: this.config.admissionTimeoutMs,
    };
    return { room, participant, reply };
  }

  /** The local room, created (and wired to the store) on first use. */
  #roomFor(name: string): Room {
    const existing = this.#rooms.get(name);
    if (existing && !existing.closed) return existing;
    const room = new Room({
      name,
      nodeId: this.nodeId,
      region: this.region,
      logger: this.#logger.child({ component: 'room' }),
    });
    room.on('tracksChanged', (p) => {
      this.#relays?.reconcile(name);
      const tracks = [...p.publications.values()].map((x) => x.info());
      this.plane.rooms.setTracks(name, p.sessionId, tracks).catch((error: unknown) => {
        // NOT_FOUND: the session left meanwhile (its unpublish events come with the leave).
        if (error instanceof SfuError && error.code === 'NOT_FOUND') return;
        // The outage's reassert writes the current tracks once Redis is back.
        this.#logger.warn({ err: error, room: name }, 'could not store the tracks');
      });
    });
    room.on('empty', () => this.#retireIfUnused(room));
    this.#rooms.set(name, room);
    return room;
  }

  /** Closes a room that has no local participant left, and stops watching it. */
  #retireIfUnused(room: Room): void {
    const name = room.name;
    void room.serialize(async () => {
      if (room.size > 0 || room.closed) return;
      room.close();
      if (this.#rooms.get(name) === room) this.#rooms.delete(name);
      await this.#relays?.closeRoom(name);
      if (this.#watched.delete(name)) {
        await this.plane.rooms.unwatch(name).catch((error: unknown) => {
          this.#logger.warn({ err: error, room: name }, 'unwatch failed');
        });
      }
    });
  }

  async leave(connection: SignalConnection, reason: LeaveReason): Promise<void> {
    const { participant, room } = connection;
    if (!participant || !room) return;
    if (this.#bySession.get(participant.sessionId) === connection)
      this.#bySession.delete(participant.sessionId);
    const stored = this.plane.rooms
      .leave(room.name, participant.sessionId, reason)
      .catch((error: unknown) => {
        // Redis is away: the reassert after the outage removes the session.
        this.#logger.warn({ err: error, room: room.name }, 'could not store the leave');
        return false;
      });
    await room.remove(participant, reason);
    await stored;
    this.safeEmit('participantLeft', room, participant, reason);
  }

  async chat(participant: Participant, room: Room, text: string): Promise<void> {
    const event = {
      type: 'chat' as const,
      origin: this.nodeId,
      from: {
        sessionId: participant.sessionId,
        identity: participant.identity,
        name: participant.name,
      },
      text,
      ts: Date.now(),
    };
    room.broadcast({ type: 'chat', from: event.from, text, ts: event.ts });
    await this.plane.rooms.chat(room.name, event);
  }

  /** Events of watched rooms, from every node (our own were applied already). */
  #onRoomEvent(name: string, event: RoomEvent): void {
    if (event.origin === this.nodeId) return;
    const room = this.#rooms.get(name);
    if (!room || room.closed) return;
    // Who is where, and what they publish, decides the relay links of the room.
    if (event.type !== 'chat') this.#relays?.reconcile(name);
    switch (event.type) {
      case 'joined':
        if (event.session.nodeId !== this.nodeId) room.remoteJoined(event.session);
        return;
      case 'left':
        if (event.session.nodeId !== this.nodeId) {
          room.remoteLeft(event.session, event.reason);
        } else if (event.reason === 'node-died') {
          // Another node took us for dead (a partition): we are not, so put our sessions back.
          void this.#reassert();
        } else {
          // Replaced by a newer session of the same identity on another node.
          void this.#bySession.get(event.session.sessionId)?.end(event.reason);
        }
        return;
      case 'tracks':
        if (event.session.nodeId !== this.nodeId) room.remoteTracks(event.session);
        return;
      case 'chat':
        room.broadcast({ type: 'chat', from: event.from, text: event.text, ts: event.ts });
        return;
    }
  }

  /** Makes the store's view of this node's sessions match what is really connected. */
  async #reassert(): Promise<void> {
    const live = new Map<string, SessionRecord[]>();
    for (const room of this.#rooms.values()) {
      live.set(
        room.name,
        [...room.participants].map((p) => ({
          sessionId: p.sessionId,
          identity: p.identity,
          name: p.name,
          nodeId: this.nodeId,
          region: this.region,
          joinedAt: p.joinedAt,
          tracks: [...p.publications.values()].map((x) => x.info()),
        })),
      );
    }
    try {
      await this.plane.rooms.reassert(this.nodeId, live);
      // Events of other nodes published while we were cut off are lost: re-read the rooms.
      for (const room of this.#rooms.values()) {
        const stored = await this.plane.rooms.participants(room.name);
        const remote = new Map(
          stored.filter((x) => x.nodeId !== this.nodeId).map((x) => [x.sessionId, x]),
        );
        for (const [sid, record] of room.remoteSessions) {
          if (!remote.has(sid)) room.remoteLeft(record, 'disconnected');
        }
        for (const record of remote.values()) room.remoteTracks(record);
      }
      this.#logger.info({ rooms: live.size }, 'sessions re-asserted in the room store');
    } catch (error) {
      this.#logger.warn({ err: error }, 'reassert failed; retrying on the next reconnect');
    }
  }

  async stats(participant: Participant, ref: string | undefined): Promise<ServerMessage> {
    const streams: StreamStats[] = [];
    const { publisher, subscriber } = participant.peerConnections;
    const trackOfMid = new Map<string, { trackId: string; kind: 'audio' | 'video' }>();
    for (const s of participant.subscriptions.values()) {
      if (s.mid)
        trackOfMid.set(`out:${s.mid}`, {
          trackId: s.publication.trackId,
          kind: s.publication.kind,
        });
    }
    for (const p of participant.publications.values()) {
      const t = publisher
        ?.getTransceivers()
        .find((x) => x.receiver.tracks.some((tr) => tr.ssrc !== undefined) && x.kind === p.kind);
      if (t?.mid) trackOfMid.set(`in:${t.mid}`, { trackId: p.trackId, kind: p.kind });
    }
    await collect(publisher, 'inbound', trackOfMid, streams);
    await collect(subscriber, 'outbound', trackOfMid, streams);
    // Bitrate over the interval since this participant's previous stats request.
    const now = performance.now();
    const previous =
      this.#lastStats.get(participant) ?? new Map<string, { bytes: number; at: number }>();
    const current = new Map<string, { bytes: number; at: number }>();
    for (const s of streams) {
      const key = `${s.direction}:${s.trackId}`;
      const before = previous.get(key);
      if (before && now > before.at)
        s.bitrateKbps = Math.round(((s.bytes - before.bytes) * 8) / (now - before.at));
      current.set(key, { bytes: s.bytes, at: now });
    }
    this.#lastStats.set(participant, current);
    return { type: 'stats', ...(ref ? { ref } : {}), streams };
  }

  // -------------------------------------------------------------------------------------
  // Relays between nodes
  // -------------------------------------------------------------------------------------

  /**
   * Samples RTT, jitter and loss of every stream from werift's stats (RTCP reports) into the
   * histograms: client legs (peer_region = this node's region) and relay links (peer_region =
   * the far node's). Off the packet path: one getStats per PeerConnection per round.
   * Our receivers' cumulative `packetsLost` (publishers, relay receivers) feeds
   * `sfu_packets_lost_total`: each round adds what it grew by since the highest value counted
   * for that PeerConnection and SSRC. It can shrink (a late or retransmitted packet arrives);
   * counting from the high-water mark never counts a packet twice and never goes negative.
   */
  async #sampleStats(): Promise<void> {
    const region = (id: string) => this.plane.registry.get(id)?.region ?? 'unknown';
    const pcs: { pc: RTCPeerConnection; path: Path; peer: string }[] = [];
    for (const room of this.#rooms.values()) {
      for (const p of room.participants) {
        const { publisher, subscriber } = p.peerConnections;
        if (publisher) pcs.push({ pc: publisher, path: 'client', peer: this.region });
        if (subscriber) pcs.push({ pc: subscriber, path: 'client', peer: this.region });
      }
    }
    for (const link of this.#relays?.links ?? [])
      pcs.push({ pc: link.peerConnection, path: 'relay', peer: region(link.remoteNode) });
    for (const r of this.#relays?.receivers ?? [])
      pcs.push({ pc: r.peerConnection, path: 'relay', peer: region(r.remoteNode) });
    for (const { pc, path, peer } of pcs) {
      if (pc.connectionState !== 'connected') continue;
      let report: Awaited<ReturnType<RTCPeerConnection['getStats']>>;
      try {
        report = await pc.getStats();
      } catch {
        continue; // closed while we sampled
      }
      for (const stat of report.values() as Iterable<Record<string, unknown>>) {
        const kind = stat.kind === 'audio' ? 'audio' : 'video';
        const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
        if (stat.type === 'remote-inbound-rtp') {
          const rtt = num(stat.roundTripTime);
          if (rtt !== undefined && rtt > 0)
            this.metrics.rtt.observe({ path, peer_region: peer }, rtt);
          const jitter = num(stat.jitter);
          if (jitter !== undefined)
            this.metrics.jitter.observe({ kind, path, peer_region: peer }, jitter);
          const lost = num(stat.fractionLost);
          if (lost !== undefined) this.metrics.lossRatio.observe({ path, peer_region: peer }, lost);
        } else if (stat.type === 'inbound-rtp') {
          const jitter = num(stat.jitter);
          if (jitter !== undefined)
            this.metrics.jitter.observe({ kind, path, peer_region: peer }, jitter);
          const lost = num(stat.packetsLost);
          const ssrc = num(stat.ssrc);
          if (lost !== undefined && ssrc !== undefined) {
            let counted = this.#lostCounted.get(pc);
            if (!counted) {
              counted = new Map();
              this.#lostCounted.set(pc, counted);
            }
            const before = counted.get(ssrc) ?? 0;
            if (lost > before) {
              this.metrics.packetsLost.inc({ kind, path }, lost - before);
              counted.set(ssrc, lost);
            }
          }
        }
      }
    }
  }

  async #startRelays(): Promise<void> {
    const bus = this.#bus;
    if (!bus) return;
    await bus.start();
    const relays = new RelayManager({
      nodeId: this.nodeId,
      signals: bus,
      view: {
        localSources: (room) => {
          const r = this.#rooms.get(room);
          if (!r || r.closed) return [];
          return [...r.participants].flatMap((p) =>
            [...p.publications.values()].map((pub) => relaySourceOf(pub)),
          );
        },
        remoteNodes: (room) => {
          const r = this.#rooms.get(room);
          const nodes = new Set<string>();
          for (const session of r?.remoteSessions.values() ?? [])
            if (session.nodeId !== this.nodeId) nodes.add(session.nodeId);
          return nodes;
        },
      },
      senderConfig: relaySenderPeerConfig(this.config),
      receiverConfig: relayReceiverPeerConfig(this.config),
      peerTimeoutMs: this.config.peerTimeoutMs,
      clock: this.stalls,
      nodes: this.plane.registry,
      logger: this.#logger,
    });
    this.#relays = relays;
    bus.onRequest((from, _type, body) => relays.handleOffer(from, body));
    bus.on('linkClose', (from, body) => void relays.handleClose(from, body));
    bus.on('rejected', (reason) => this.metrics.relayRejected.inc({ reason }));
    bus.on('redisError', (op) => this.metrics.redisErrors.inc({ op }));
    relays.on('relayedTrack', (room, from, track) => this.#onRelayedTrack(room, from, track));
    relays.on('relayedTrackEnded', (room, trackId) =>
      this.#rooms.get(room)?.removeRelayed(trackId),
    );
    relays.on('linkEstablished', (_link, ms) => this.metrics.relaySetupDuration.observe(ms / 1000));
    relays.on('linkClosed', (_link, reason) => this.metrics.relayLinkCloses.inc({ reason }));
    relays.on('receiverClosed', (_r, reason) => this.metrics.relayReceiverCloses.inc({ reason }));
    const out = {
      audio: this.metrics.stream('out', 'audio', 'relay'),
      video: this.metrics.stream('out', 'video', 'relay'),
    };
    relays.on('linkOpened', (link) => {
      link.on('packetOut', (kind, bytes) => {
        out[kind].packets.inc();
        out[kind].bytes.inc(bytes);
      });
    });
  }

  /** A track relayed from another node becomes a publication of this node's room. */
  #onRelayedTrack(roomName: string, from: string, track: RelayedTrack): void {
    const room = this.#rooms.get(roomName);
    if (!room || room.closed) return;
    const { info } = track;
    const publication = new Publication({
      trackId: info.trackId,
      kind: info.kind,
      source: info.source,
      participantSid: info.participantSid,
      identity: info.identity,
      codec: new RTCRtpCodecParameters({
        mimeType: info.codec.mimeType,
        clockRate: info.codec.clockRate,
        ...(info.codec.channels === undefined ? {} : { channels: info.codec.channels }),
        ...(info.codec.parameters === undefined ? {} : { parameters: info.codec.parameters }),
        rtcpFeedback:
          info.kind === 'video' ? [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] : [],
      }),
      origin: { path: 'relay', requestKeyframe: () => track.requestKeyframe() },
      metrics: this.metrics,
      logger: this.#logger.child({ component: 'relayed', from, trackId: info.trackId }),
    });
    const stop = track.onPacket((rtp) => publication.forward(rtp));
    publication.once('close', stop);
    room.addRelayed(publication);
  }

  /**
   * Takes the node out of service without dropping anyone silently: it is marked draining in
   * the registry (routing skips it at once), every client is told to reconnect with a fresh
   * route, and the node deregisters. Waits at most SFU_DRAIN_TIMEOUT_MS for sessions to end.
   */
  drain(): Promise<void> {
    if (this.#drained !== undefined) return this.#drained;
    this.#drained = (async () => {
      if (this.#state !== 'active') return;
      this.#state = 'draining';
      await this.plane.registry
        .update({ state: 'draining' }, { immediate: true })
        .catch((error: unknown) => {
          this.#logger.warn({ err: error }, 'could not mark the node draining in the registry');
        });
      let reconnect: { url: string } | undefined;
      try {
        reconnect = { url: this.plane.selector.select({}).node.url };
      } catch {
        // No other node can take the sessions: clients are told to come back later.
        reconnect = undefined;
      }
      this.#logger.info({ sessions: this.#bySession.size, reconnect }, 'draining');
      const ending = [...this.#connections].map((c) => c.end('draining', reconnect));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.config.drainTimeoutMs);
      });
      await Promise.race([Promise.allSettled(ending), deadline]);
      clearTimeout(timer);
      await this.plane.registry.deregister().catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'deregistration failed; the record will expire');
      });
    })();
    return this.#drained;
  }

  /** Ends every session (clients are told why), closes every PeerConnection and the server. */
  async close(reason: LeaveReason = 'server-shutdown'): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#loadTimer);
    clearInterval(this.#statsTimer);
    this.stalls.close();
    this.#handshakes.close();
    await this.#relays?.close();
    await this.#bus?.close();
    await Promise.allSettled([...this.#connections].map((c) => c.end(reason)));
    for (const room of this.#rooms.values()) room.close();
    this.#rooms.clear();
    for (const client of this.#wss?.clients ?? []) client.terminate();
    this.#wss?.close();
    const http = this.#http;
    if (http) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
    await this.#metricsServer?.close();
    await this.plane.registry.deregister().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'deregistration failed; the record will expire');
    });
    await this.plane.close();
    this.removeAllListeners();
  }
}

type StatValue = Record<string, unknown> & { type?: string; kind?: string; mid?: string };

async function collect(
  pc: RTCPeerConnection | undefined,
  direction: 'inbound' | 'outbound',
  trackOfMid: Map<string, { trackId: string; kind: 'audio' | 'video' }>,
  out: StreamStats[],
): Promise<void> {
  if (!pc) return;
  const report = await pc.getStats();
  const values = [...report.values()] as unknown as StatValue[];
  const rtpType = direction === 'inbound' ? 'inbound-rtp' : 'outbound-rtp';
  for (const s of values) {
    if (s.type !== rtpType) continue;
    const kind = s.kind === 'audio' ? 'audio' : 'video';
    const mapped =
      typeof s.mid === 'string'
        ? trackOfMid.get(`${direction === 'inbound' ? 'in' : 'out'}:${s.mid}`)
        : undefined;
    const remote = values.find((r) => r.type === 'remote-inbound-rtp' && r.localId === s.id);
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
    out.push({
      trackId: mapped?.trackId ?? String(s.trackIdentifier ?? s.id ?? ''),
      kind: mapped?.kind ?? kind,
      direction,
      packets: num(direction === 'inbound' ? s.packetsReceived : s.packetsSent),
      bytes: num(direction === 'inbound' ? s.bytesReceived : s.bytesSent),
      packetsLost: num(direction === 'inbound' ? s.packetsLost : remote?.packetsLost),
      jitterMs:
        typeof s.jitter === 'number'
          ? s.jitter * 1000
          : typeof remote?.jitter === 'number'
            ? remote.jitter * 1000
            : null,
      rttMs: typeof remote?.roundTripTime === 'number' ? remote.roundTripTime * 1000 : null,
      bitrateKbps: 0,
    });
  }
}
