import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  type ClientMessageOf,
  type LeaveReason,
  LIMITS,
  type Logger,
  type NodeConfig,
  requireLocation,
  type ServerMessage,
  SfuError,
  StallDetector,
  type TokenService,
  TypedEmitter,
} from '@geosfu/common';
import { fixWeriftDtls } from '@geosfu/media';
import {
  type ControlPlane,
  listenMetrics,
  type MetricsServer,
  RoomLifecycle,
  type RoomService,
  roomService,
  type WebhookInput,
} from '@geosfu/registry';
import type { RelayBus } from '@geosfu/relay';
import { WebSocketServer } from 'ws';
import { HandshakeGate } from './HandshakeGate.js';
import { HttpSessions } from './HttpSessions.js';
import { createHttpApp, type HttpHost } from './httpApp.js';
import { LocalRooms } from './LocalRooms.js';
import { NodeMetrics } from './metrics.js';
import { NodeLoad } from './NodeLoad.js';
import { observeControlPlane } from './observePlane.js';
import type { Participant } from './Participant.js';
import { RelayBridge } from './RelayBridge.js';
import type { Room } from './Room.js';
import { RoomCommands } from './RoomCommands.js';
import { type JoinResult, Sessions } from './Sessions.js';
import { SignalConnection, type SignalHost } from './SignalConnection.js';
import { type SampledPeer, StatsSampler } from './StatsSampler.js';
import { TlsCredentials } from './TlsCredentials.js';

export const VERSION: string = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

// A node is the DTLS server towards clients and relay senders, and a DTLS client on its own
// relay links: werift's handshakes on both sides fail for good after some losses (weriftDtls.ts).
fixWeriftDtls();

export type NodeState = 'created' | 'active' | 'draining' | 'closed';

export type SfuNodeEvents = {
  /** A drain finished: every session was moved and the node deregistered. */
  drained: [];
};

/**
 * One SFU node: its lifecycle (start, drain, close), the HTTP and websocket servers, and the
 * parts it creates and closes: the local rooms kept in step with the cluster (`LocalRooms`),
 * the sessions (`Sessions`: joins, leaves, chat), the relay bridge in cluster mode
 * (`RelayBridge`), stats sampling (`StatsSampler`), admission control (`HandshakeGate`) and
 * the stall-proof clock of every liveness timer (`StallDetector`). The control plane and the
 * relay bus are given to it and closed by whoever created them (the CLI).
 */
export class SfuNode extends TypedEmitter<SfuNodeEvents> implements SignalHost, HttpHost {
  readonly config: NodeConfig;
  readonly metrics: NodeMetrics;
  readonly tokens: TokenService;
  readonly stalls: StallDetector;
  readonly plane: ControlPlane;
  /** The room service API: any call, carried out by the node that holds the participant. */
  readonly roomService: RoomService;
  readonly #logger: Logger;
  #state: NodeState = 'created';
  readonly #rooms: LocalRooms;
  readonly #sessions: Sessions;
  /** WHIP and WHEP: participants whose signalling is HTTP. */
  readonly httpSessions: HttpSessions;
  readonly #relays: RelayBridge | undefined;
  readonly #stats: StatsSampler;
  readonly #load = new NodeLoad();
  /** Admission control: PeerConnection set-ups in progress at once, the rest queue. */
  readonly #handshakes: HandshakeGate;
  readonly #connections = new Set<SignalConnection>();
  #http: Server | undefined;
  /** SFU_TLS_CERT/KEY, when set: the server is HTTPS and reloads them when they change. */
  #tls: TlsCredentials | undefined;
  /** The `/metrics`-only server on SFU_METRICS_PORT, when that is set. */
  #metricsServer: MetricsServer | undefined;
  #wss: WebSocketServer | undefined;
  #url: string | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #drained: Promise<void> | undefined;
  #lifecycle: RoomLifecycle | undefined;

  /**
   * @param plane the control plane (registry, room store, routing); the caller closes it.
   * @param bus the relay signalling bus, started (cluster mode); without one, the node relays
   *   nothing (single-node mode, where every participant is here anyway). The caller closes it.
   */
  constructor(config: NodeConfig, logger: Logger, plane: ControlPlane, bus?: RelayBus) {
    super((event, error) => logger.error({ err: error, event }, 'node listener threw'));
    this.config = config;
    this.plane = plane;
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
    this.#rooms = new LocalRooms({
      nodeId: config.nodeId,
      region: config.region,
      store: plane.rooms,
      logger: this.#logger,
      hooks: {
        membershipChanged: (room) => this.#relays?.reconcile(room),
        retired: async (room) => this.#relays?.closeRoom(room),
        endSession: (sessionId, reason) => void this.#sessions.end(sessionId, reason),
        notify: (event) => this.#notify(event),
      },
    });
    this.metrics = new NodeMetrics(
      { nodeId: config.nodeId, region: config.region, version: VERSION },
      {
        rooms: () => this.#rooms.size,
        participants: () => this.#sessions.size,
        handshakes: () => ({ active: this.#handshakes.active, waiting: this.#handshakes.waiting }),
        publishedTracks: (kind) =>
          this.#count((p) => [...p.publications.values()].filter((x) => x.kind === kind).length),
        subscriptions: (kind) =>
          this.#count(
            (p) => [...p.subscriptions.values()].filter((x) => x.publication.kind === kind).length,
          ),
        relayLinks: () => [
          ...(this.#relays?.links ?? []).map((l) => ({
            peerRegion: this.#regionOf(l.remoteNode),
            direction: 'out' as const,
          })),
          ...(this.#relays?.receivers ?? []).map((r) => ({
            peerRegion: this.#regionOf(r.remoteNode),
            direction: 'in' as const,
          })),
        ],
      },
    );
    this.#sessions = new Sessions({
      config,
      metrics: this.metrics,
      stalls: this.stalls,
      tokens: this.tokens,
      rooms: this.#rooms,
      store: plane.rooms,
      settings: plane.roomSettings,
      handshakes: this.#handshakes,
      logger: this.#logger,
      accepting: () => this.#state === 'active',
      membershipChanged: (room) => this.#relays?.reconcile(room),
    });
    this.httpSessions = new HttpSessions({
      sessions: this.#sessions,
      tokens: this.tokens,
      metrics: this.metrics,
      logger: this.#logger,
    });
    this.#relays = bus
      ? new RelayBridge({
          bus,
          config,
          metrics: this.metrics,
          stalls: this.stalls,
          registry: plane.registry,
          rooms: this.#rooms,
          logger: this.#logger,
          notify: (event) => this.#notify(event),
        })
      : undefined;
    const commands = new RoomCommands({
      rooms: this.#rooms,
      store: plane.rooms,
      nodeId: config.nodeId,
      region: config.region,
      end: (sessionId, reason) => this.#sessions.end(sessionId, reason),
    });
    this.roomService = roomService(plane, config, commands.run, (room, settings) =>
      this.#lifecycle?.watchExpiry(room, settings),
    );
    this.#stats = new StatsSampler({
      metrics: this.metrics,
      peers: () => this.#sampledPeers(),
      logger: this.#logger,
    });
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
    return this.#sessions.size;
  }

  /** The base URL clients use: SFU_PUBLIC_URL, else the address the node listens on. */
  get url(): string {
    if (!this.#url) throw new SfuError('CLOSED', 'the node is not listening; call start() first');
    return this.#url;
  }

  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms.all;
  }

  requestDrain(by: string): void {
    this.#logger.info({ by }, 'drain requested');
    void this.drain().then(() => this.safeEmit('drained'));
  }

  /** Webhooks (when configured): sent in the background, never waited for. */
  #notify(event: WebhookInput): void {
    this.plane.webhooks?.send(event);
  }

  #regionOf(nodeId: string): string {
    return this.plane.registry.get(nodeId)?.region ?? 'unknown';
  }

  #count(f: (p: Participant) => number): number {
    let n = 0;
    for (const p of this.#rooms.participants()) n += f(p);
    return n;
  }

  /** Every PeerConnection of the node, labelled for the RTT, jitter and loss histograms. */
  *#sampledPeers(): Generator<SampledPeer> {
    for (const p of this.#rooms.participants()) {
      const { publisher, subscriber } = p.peerConnections;
      if (publisher) yield { pc: publisher, path: 'client', peerRegion: this.region };
      if (subscriber) yield { pc: subscriber, path: 'client', peerRegion: this.region };
    }
    for (const link of this.#relays?.links ?? [])
      yield { pc: link.peerConnection, path: 'relay', peerRegion: this.#regionOf(link.remoteNode) };
    for (const r of this.#relays?.receivers ?? [])
      yield { pc: r.peerConnection, path: 'relay', peerRegion: this.#regionOf(r.remoteNode) };
  }

  #currentLoad() {
    return this.#load.read(
      this.#sessions.size,
      this.#count((p) => p.publications.size),
      this.#count((p) => [...p.subscriptions.values()].reduce((n, s) => n + s.bytesOut, 0)),
    );
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
    const port = await this.#listen().catch(async (error: unknown) => {
      await this.#tls?.close();
      await this.#metricsServer?.close();
      throw error;
    });
    await this.plane.registry.register({
      id: this.nodeId,
      region: this.region,
      ...requireLocation(this.config),
      url: this.url,
      signalUrl: `${this.url.replace(/^http/, 'ws')}/v1/signal`,
      state: 'active',
      capacity: this.config.capacity,
      load: this.#currentLoad(),
      version: VERSION,
      startedAt: Date.now(),
    });
    this.#stats.start();
    observeControlPlane(this.plane, this.metrics, this.nodeId, this.#logger);
    this.plane.rooms.on('event', (room, event) => this.#rooms.onStoreEvent(room, event));
    this.#lifecycle = new RoomLifecycle({
      store: this.plane.rooms,
      settings: this.plane.roomSettings,
      notify: (event) => this.#notify(event),
      logger: this.#logger,
    });
    this.plane.rooms.on('reconnected', () => void this.#rooms.reassert());
    this.#loadTimer = setInterval(() => {
      this.plane.registry.update({ load: this.#currentLoad() }).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'load update failed');
      });
    }, this.config.heartbeatMs);
    this.#state = 'active';
    return {
      url: this.url,
      port,
      ...(this.#metricsServer ? { metricsPort: this.#metricsServer.port } : {}),
    };
  }

  /** The HTTP server with the signalling websocket on /v1/signal; resolves with the port. */
  async #listen(): Promise<number> {
    const app = createHttpApp(this, this.#logger);
    const { tlsCert, tlsKey } = this.config;
    let http: Server;
    if (tlsCert !== undefined && tlsKey !== undefined) {
      const tls = await TlsCredentials.open(tlsCert, tlsKey, this.#logger);
      this.#tls = tls;
      const https = createHttpsServer({ ...tls.pair }, app);
      // New handshakes use the renewed certificate; open connections keep theirs.
      tls.on('reloaded', (pair) => https.setSecureContext({ ...pair }));
      http = https;
    } else {
      http = createServer(app);
    }
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
    });
    const port = (http.address() as AddressInfo).port;
    const host =
      this.config.httpHost === '0.0.0.0' || this.config.httpHost === '::'
        ? 'localhost'
        : this.config.httpHost;
    this.#url = (
      this.config.publicUrl ??
      `${this.#tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`
    ).replace(/\/$/, '');
    return port;
  }

  // -------------------------------------------------------------------------------------
  // SignalHost: what a websocket session asks of the node
  // -------------------------------------------------------------------------------------

  join(connection: SignalConnection, message: ClientMessageOf<'join'>): Promise<JoinResult> {
    return this.#sessions.join(connection, message);
  }

  leave(connection: SignalConnection, reason: LeaveReason): Promise<void> {
    return this.#sessions.leave(connection, reason);
  }

  chat(participant: Participant, room: Room, text: string): Promise<void> {
    return this.#sessions.chat(participant, room, text);
  }

  stats(participant: Participant, ref: string | undefined): Promise<ServerMessage> {
    return this.#stats.participantStats(participant, ref);
  }

  // -------------------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------------------

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
      this.#logger.info({ sessions: this.#sessions.size, reconnect }, 'draining');
      const ending = [
        ...[...this.#connections].map((c) => c.end('draining', reconnect)),
        this.httpSessions.endAll('draining'),
      ];
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

  /**
   * Ends every session (clients are told why), closes every PeerConnection, relay link and
   * server of the node, and deregisters it. The control plane and the relay bus stay open:
   * their creator closes them after this.
   */
  async close(reason: LeaveReason = 'server-shutdown'): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#loadTimer);
    this.#lifecycle?.close();
    this.#stats.close();
    this.stalls.close();
    this.#handshakes.close();
    await this.#relays?.close();
    await Promise.allSettled([
      ...[...this.#connections].map((c) => c.end(reason)),
      this.httpSessions.close(reason),
    ]);
    this.#rooms.close();
    for (const client of this.#wss?.clients ?? []) client.terminate();
    this.#wss?.close();
    const http = this.#http;
    if (http) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
    await this.#tls?.close();
    await this.#metricsServer?.close();
    await this.plane.registry.deregister().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'deregistration failed; the record will expire');
    });
    this.removeAllListeners();
  }
}
