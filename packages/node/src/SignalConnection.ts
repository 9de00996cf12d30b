import { randomUUID } from 'node:crypto';
import {
  CLOSE_CODES,
  type ClientMessage,
  type ErrorCode,
  type LeaveReason,
  LIMITS,
  type Logger,
  type NodeConfig,
  parseClientMessage,
  type ServerMessage,
  SfuError,
  type StallDetector,
  toSfuError,
} from '@geosfu/common';
import type { RawData, WebSocket } from 'ws';
import type { NodeMetrics } from './metrics.js';
import type { Participant } from './Participant.js';
import type { Room } from './Room.js';

/** What a connection needs from its node: joining and leaving rooms. */
export interface SignalHost {
  readonly nodeId: string;
  readonly region: string;
  readonly metrics: NodeMetrics;
  readonly config: Pick<NodeConfig, 'pingIntervalMs' | 'pingTimeoutMs'>;
  /** The clock of the heartbeat: it does not count time the node itself was stopped. */
  readonly stalls: StallDetector;
  join(
    connection: SignalConnection,
    message: Extract<ClientMessage, { type: 'join' }>,
  ): Promise<{ room: Room; participant: Participant; reply: ServerMessage }>;
  leave(connection: SignalConnection, reason: LeaveReason): Promise<void>;
  stats(participant: Participant, ref: string | undefined): Promise<ServerMessage>;
  chat(participant: Participant, room: Room, text: string): Promise<void>;
}

/** Messages queued for one connection before it is considered abusive. */
const MAX_QUEUED_MESSAGES = 64;

type State = 'open' | 'joining' | 'joined' | 'closed';

/**
 * One websocket session. Parses every frame at the edge, applies the rate limit and the abuse
 * policy, processes messages strictly in order (a trickle never overtakes the publish it
 * follows), runs the heartbeat, and ends the session exactly once whichever way it ends.
 */
export class SignalConnection {
  readonly connectionId = randomUUID();
  readonly remoteAddress: string;
  #ws: WebSocket;
  #host: SignalHost;
  #logger: Logger;
  #state: State = 'open';
  #participant: Participant | undefined;
  #room: Room | undefined;
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #tokens: number = LIMITS.messageBurst;
  #lastRefill = Date.now();
  #errors: number[] = [];
  /** Last frame or pong, on the host's stall-proof clock. */
  #lastSeen: number;
  #heartbeat: NodeJS.Timeout;
  /** Set once the session is over, with the reason, so a second ending is a no-op. */
  #ended: LeaveReason | undefined;

  constructor(ws: WebSocket, remoteAddress: string, host: SignalHost, logger: Logger) {
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
    this.#host = host;
    this.#logger = logger.child({ connectionId: this.connectionId });
    this.#lastSeen = host.stalls.now();
    ws.on('message', (data, isBinary) => this.#onFrame(data, isBinary));
    ws.on('pong', () => {
      this.#lastSeen = host.stalls.now();
    });
    ws.on('close', () => {
      void this.end('disconnected');
    });
    ws.on('error', (error) => this.#logger.debug({ err: error }, 'websocket error'));
    this.#heartbeat = setInterval(() => this.#checkHeartbeat(), host.config.pingIntervalMs);
  }

  get state(): State {
    return this.#state;
  }

  get participant(): Participant | undefined {
    return this.#participant;
  }

  get room(): Room | undefined {
    return this.#room;
  }

  send(message: ServerMessage): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.send(JSON.stringify(message));
  }

  sendError(code: ErrorCode, message: string, ref?: string): void {
    this.#host.metrics.signalErrors.inc({ code });
    this.send({ type: 'error', code, message, ...(ref === undefined ? {} : { ref }) });
    this.#countAbuse();
  }

  /**
   * Silence is measured on the stall-proof clock: after the node was stopped, this timer runs
   * before the pongs waiting in the socket are read, and must not blame the client for the
   * stop (docs/ARCHITECTURE.md, Liveness).
   */
  #checkHeartbeat(): void {
    if (this.#host.stalls.now() - this.#lastSeen > this.#host.config.pingTimeoutMs) {
      this.#logger.info('heartbeat timed out');
      void this.end('heartbeat-timeout');
      return;
    }
    // Protocol-level ping: browsers answer it without any page code.
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.ping();
  }

  #onFrame(data: RawData, isBinary: boolean): void {
    this.#lastSeen = this.#host.stalls.now();
    if (this.#state === 'closed') return;
    const size = Array.isArray(data)
      ? data.reduce((n, b) => n + b.length, 0)
      : data instanceof ArrayBuffer
        ? data.byteLength
        : data.length;
    if (size > LIMITS.maxMessageBytes) {
      this.sendError(
        'MESSAGE_TOO_LARGE',
        `frame of ${size} bytes is over the ${LIMITS.maxMessageBytes}-byte limit`,
      );
      return;
    }
    if (isBinary) {
      this.sendError('BAD_MESSAGE', 'binary frames are not part of the protocol; send JSON text');
      return;
    }
    if (!this.#takeToken()) {
      this.sendError('RATE_LIMITED', `more than ${LIMITS.messagesPerSecond} messages per second`);
      return;
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.from(data as Buffer).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      this.sendError(parsed.code, parsed.message, parsed.ref);
      return;
    }
    if (parsed.message.type === 'ping') {
      // Out of the queue: a publish may be waiting for its turn to be set up (HandshakeGate)
      // for many seconds, and a client that hears no pong meanwhile takes the node for dead.
      this.send({ type: 'pong', ts: parsed.message.ts, serverTs: Date.now() });
      return;
    }
    if (this.#queued >= MAX_QUEUED_MESSAGES) {
      this.sendError(
        'RATE_LIMITED',
        'too many messages waiting to be processed',
        'id' in parsed.message ? parsed.message.id : undefined,
      );
      return;
    }
    const message = parsed.message;
    this.#queued++;
    this.#queue = this.#queue
      .then(() => this.#handle(message))
      .catch((error: unknown) => {
        const e = toSfuError(error);
        if (e.code === 'INTERNAL')
          this.#logger.error({ err: error, type: message.type }, 'message handler failed');
        this.sendError(e.code, e.message, 'id' in message ? message.id : undefined);
      })
      .finally(() => {
        this.#queued--;
      });
  }

  async #handle(message: ClientMessage): Promise<void> {
    if (this.#state === 'closed' || message.type === 'ping') return; // pings: #onFrame
    if (message.type === 'join') {
      if (this.#state !== 'open')
        throw new SfuError(
          'ALREADY_JOINED',
          'this connection has already joined; open a new one to join again',
        );
      this.#state = 'joining';
      try {
        const { room, participant, reply } = await this.#host.join(this, message);
        if (this.#state !== 'joining') {
          // The socket closed while we were joining: undo it through the one way out.
          this.#room = room;
          this.#participant = participant;
          await this.#host.leave(this, this.#ended ?? 'disconnected');
          return;
        }
        this.#room = room;
        this.#participant = participant;
        this.#state = 'joined';
        participant.on('failed', () => void this.end('peer-connection-failed'));
        this.send(reply);
        participant.start();
      } catch (error) {
        if (this.#state === 'joining') this.#state = 'open';
        throw error;
      }
      return;
    }
    const participant = this.#participant;
    if (this.#state !== 'joined' || !participant) {
      throw new SfuError(
        'NOT_JOINED',
        `"${message.type}" needs a joined session: send "join" with a token first`,
      );
    }
    const ref = 'id' in message && message.id !== undefined ? { ref: message.id } : undefined;
    switch (message.type) {
      case 'publish':
        this.send(await participant.publish(message));
        return;
      case 'subscriber.answer':
        await participant.subscriberAnswer(message);
        if (ref) this.send({ type: 'ok', ...ref });
        return;
      case 'trickle':
        await participant.trickle(message.target, message.candidate);
        return;
      case 'unpublish':
        participant.unpublish(message.trackId);
        if (ref) this.send({ type: 'ok', ...ref });
        return;
      case 'mute':
        participant.mute(message.trackId, message.muted);
        if (ref) this.send({ type: 'ok', ...ref });
        return;
      case 'subscription.settings':
        participant.updateSubscription(message);
        if (ref) this.send({ type: 'ok', ...ref });
        return;
      case 'chat':
        if (this.#room) await this.#host.chat(participant, this.#room, message.text);
        if (ref) this.send({ type: 'ok', ...ref });
        return;
      case 'stats':
        this.send(await this.#host.stats(participant, message.id));
        return;
      case 'leave':
        if (ref) this.send({ type: 'ok', ...ref });
        await this.end('left');
        return;
    }
  }

  #takeToken(): boolean {
    const now = Date.now();
    this.#tokens = Math.min(
      LIMITS.messageBurst,
      this.#tokens + ((now - this.#lastRefill) / 1000) * LIMITS.messagesPerSecond,
    );
    this.#lastRefill = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Repeated errors within the window mean a broken or hostile client: close with 1008. */
  #countAbuse(): void {
    const now = Date.now();
    this.#errors = this.#errors.filter((t) => now - t < LIMITS.abuseWindowMs);
    this.#errors.push(now);
    if (this.#errors.length > LIMITS.maxErrorsPerWindow && this.#state !== 'closed') {
      this.#logger.warn({ errors: this.#errors.length }, 'closing abusive connection');
      void this.end('policy-violation');
    }
  }

  /**
   * Ends the session exactly once: leaves the room (telling the others why), tells the client
   * when it is still there, and closes the socket with a code that matches the reason.
   */
  async end(reason: LeaveReason, reconnect?: { url: string }): Promise<void> {
    if (this.#ended !== undefined) return;
    this.#ended = reason;
    const wasJoined = this.#state === 'joined';
    this.#state = 'closed';
    clearInterval(this.#heartbeat);
    if (reason !== 'disconnected' && reason !== 'left') {
      this.send({ type: 'leave', reason, ...(reconnect ? { reconnect } : {}) });
    }
    const code =
      reason === 'policy-violation'
        ? CLOSE_CODES.policyViolation
        : reason === 'replaced'
          ? CLOSE_CODES.replaced
          : reason === 'heartbeat-timeout'
            ? CLOSE_CODES.heartbeatTimeout
            : reason === 'draining'
              ? CLOSE_CODES.draining
              : reason === 'server-shutdown'
                ? CLOSE_CODES.goingAway
                : reason === 'left'
                  ? CLOSE_CODES.left
                  : CLOSE_CODES.normal;
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.close(code, reason);
    if (wasJoined) await this.#host.leave(this, reason);
    // A socket that does not finish the closing handshake is cut.
    setTimeout(() => this.#ws.terminate(), 2_000).unref();
  }
}
