import {
  type ClientMessageOf,
  type Grants,
  type IceCandidate,
  InvalidStateError,
  type Logger,
  type NodeConfig,
  type ParticipantInfo,
  type ParticipantPermissions,
  type ParticipantPermissionsState,
  type PeerTarget,
  type ServerMessage,
  SfuError,
  type StallDetector,
  TypedEmitter,
} from '@geosfu/common';
import { PeerLiveness } from '@geosfu/media';
import type { RTCPeerConnection } from 'werift';
import type { HandshakeGate } from './HandshakeGate.js';
import type { NodeMetrics } from './metrics.js';
import { PeerAdmission } from './PeerAdmission.js';
import type { Publication } from './Publication.js';
import { PublisherPeer } from './PublisherPeer.js';
import { SubscriberPeer } from './SubscriberPeer.js';
import type { Subscription } from './Subscription.js';

export type ParticipantEvents = {
  /** A track of this participant is ready to be forwarded. */
  published: [Publication];
  unpublished: [Publication];
  /** A PeerConnection failed for longer than the grace period. */
  failed: [];
  /** First media packet sent to this participant (join time metric). */
  firstMediaOut: [];
};

/**
 * A participant: one websocket session in one room, with up to two PeerConnections, each
 * owned by one half: `PublisherPeer` (the client offers) and `SubscriberPeer` (the node
 * offers), so the two sides never offer on the same connection and renegotiation cannot
 * collide (docs/PROTOCOL.md). The participant checks grants, watches both connections'
 * liveness and closes both halves.
 */
export class Participant extends TypedEmitter<ParticipantEvents> {
  readonly sessionId: string;
  readonly identity: string;
  /** From the token; the room service API may change it, and `metadata`. */
  name: string;
  metadata: string | undefined;
  readonly joinedAt = Date.now();
  readonly autoSubscribe: boolean;
  /** Only this identity's tracks are forwarded to this participant (a WHEP viewer's choice). */
  readonly watch: string | undefined;
  #config: NodeConfig;
  #stalls: StallDetector;
  #logger: Logger;
  #send: (message: ServerMessage) => void;
  #publisher: PublisherPeer;
  #subscriber: SubscriberPeer;
  #liveness: PeerLiveness[] = [];
  /** From the token, changed by the room service API (`setPermissions`). */
  #permissions: ParticipantPermissionsState;
  #closed = false;
  /** Unsubscribers of every werift event this participant listens to, called on close. */
  #werift: (() => void)[] = [];
  #admission: PeerAdmission;

  constructor(options: {
    sessionId: string;
    identity: string;
    name: string;
    grants: Grants;
    autoSubscribe: boolean;
    /**
     * WHEP: the client offers what it receives and the node answers (SubscriberPeer's viewer
     * mode); without it the node offers each change to the subscriber.
     */
    viewer?: boolean | undefined;
    watch?: string | undefined;
    config: NodeConfig;
    /** The clock of the liveness timers (it skips time the node was stopped). */
    stalls: StallDetector;
    metrics: NodeMetrics;
    logger: Logger;
    send: (message: ServerMessage) => void;
    handshakes: HandshakeGate;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'participant listener threw'),
    );
    this.sessionId = options.sessionId;
    this.identity = options.identity;
    this.name = options.name;
    this.metadata = undefined;
    this.#permissions = {
      canPublish: options.grants.canPublish,
      canSubscribe: options.grants.canSubscribe,
      canChat: options.grants.canChat,
    };
    this.autoSubscribe = options.autoSubscribe;
    this.watch = options.watch;
    this.#config = options.config;
    this.#stalls = options.stalls;
    this.#logger = options.logger;
    this.#send = options.send;
    this.#admission = new PeerAdmission(options.handshakes);
    const common = {
      sessionId: this.sessionId,
      config: options.config,
      metrics: options.metrics,
      logger: options.logger,
      admission: this.#admission,
    };
    this.#publisher = new PublisherPeer({
      ...common,
      identity: this.identity,
      send: (message) => this.send(message),
      onPeerConnection: (pc) => this.#watchConnection(pc, 'publisher'),
    });
    this.#publisher.on('published', (p) => this.safeEmit('published', p));
    this.#publisher.on('unpublished', (p) => this.safeEmit('unpublished', p));
    this.#subscriber = new SubscriberPeer({
      ...common,
      send: (message) => this.send(message),
      onPeerConnection: (pc) => this.#watchConnection(pc, 'subscriber'),
      onFirstMedia: () => this.safeEmit('firstMediaOut'),
      viewer: options.viewer ?? false,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get publications(): ReadonlyMap<string, Publication> {
    return this.#publisher.publications;
  }

  /** The mid of the publisher m-line a publication of this participant arrives on. */
  publicationMid(publication: Publication): string | undefined {
    return this.#publisher.midOf(publication);
  }

  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriber.subscriptions;
  }

  /** The werift PeerConnections, for stats. */
  get peerConnections(): { publisher?: RTCPeerConnection; subscriber?: RTCPeerConnection } {
    return { publisher: this.#publisher.pc, subscriber: this.#subscriber.pc };
  }

  info(nodeId: string, region: string): ParticipantInfo {
    return {
      sessionId: this.sessionId,
      identity: this.identity,
      name: this.name,
      joinedAt: this.joinedAt,
      nodeId,
      region,
      tracks: [...this.publications.values()].map((p) => p.info()),
      ...(this.metadata === undefined ? {} : { metadata: this.metadata }),
    };
  }

  /** Called once `joined` has been sent: from now on the node may offer. */
  start(): void {
    if (!this.#closed) this.#subscriber.start();
  }

  send(message: ServerMessage): void {
    if (!this.#closed) this.#send(message);
  }

  async publish(request: ClientMessageOf<'publish'>): Promise<ServerMessage> {
    this.#assertOpen();
    if (!this.#permissions.canPublish)
      throw new SfuError(
        'PERMISSION_DENIED',
        'this participant may not publish (its token, or the room service, says so)',
      );
    return this.#publisher.publish(request);
  }

  unpublish(trackId: string): void {
    this.#assertOpen();
    this.#publisher.unpublish(trackId);
  }

  mute(trackId: string, muted: boolean): Publication {
    this.#assertOpen();
    return this.#publisher.mute(trackId, muted);
  }

  /** Forwards a publication to this participant; renegotiates the subscriber PC. */
  subscribe(publication: Publication): void {
    this.#assertOpen();
    if (this.watch !== undefined && publication.identity !== this.watch) return;
    if (this.#permissions.canSubscribe) this.#subscriber.subscribe(publication);
  }

  get permissions(): ParticipantPermissionsState {
    return { ...this.#permissions };
  }

  /**
   * Changes what the participant may do, at once: a revoked `canPublish` unpublishes its
   * tracks, a revoked `canSubscribe` ends its subscriptions (the room subscribes it again
   * when it is given back). The client is told with a `permissions` message.
   */
  setPermissions(change: ParticipantPermissions): ParticipantPermissionsState {
    this.#assertOpen();
    this.#permissions = { ...this.#permissions, ...change };
    if (!this.#permissions.canPublish) {
      for (const trackId of [...this.publications.keys()]) this.#publisher.unpublish(trackId);
    }
    if (!this.#permissions.canSubscribe) {
      for (const trackId of [...this.subscriptions.keys()]) this.#subscriber.unsubscribe(trackId);
    }
    this.send({ type: 'permissions', ...this.#permissions });
    return this.permissions;
  }

  /**
   * WHEP: answers the viewer's offer (its recvonly m-lines); the tracks this participant
   * subscribes to are sent on them.
   */
  async answerViewerOffer(sdp: string): Promise<string> {
    this.#assertOpen();
    if (!this.#permissions.canSubscribe)
      throw new SfuError('PERMISSION_DENIED', 'this token does not allow subscribing');
    return this.#subscriber.answerOffer(sdp);
  }

  unsubscribe(trackId: string): void {
    this.#subscriber.unsubscribe(trackId);
  }

  /** How this participant shows a video it receives: the node picks the layer from it. */
  updateSubscription(request: ClientMessageOf<'subscription.settings'>): void {
    this.#assertOpen();
    this.#subscriber.updateSettings(request.trackId, {
      visible: request.visible,
      width: request.width,
      height: request.height,
      pin: request.pin ?? 'auto',
    });
  }

  async subscriberAnswer(request: ClientMessageOf<'subscriber.answer'>): Promise<void> {
    this.#assertOpen();
    await this.#subscriber.answer(request);
  }

  async trickle(target: PeerTarget, candidate: IceCandidate | null): Promise<void> {
    this.#assertOpen();
    if (candidate === null) return; // end of candidates: nothing to do for an ICE-lite node
    if (target === 'publisher') await this.#publisher.trickle(candidate);
    else await this.#subscriber.trickle(candidate);
  }

  /**
   * Ends the session when a PeerConnection is dead for longer than SFU_PEER_TIMEOUT_MS: failed,
   * never connected, or silent while it carries streams (PeerLiveness says why state alone is
   * not enough for an ICE-lite node).
   */
  #watchConnection(pc: RTCPeerConnection, target: PeerTarget): void {
    this.#werift.push(
      pc.connectionStateChange.subscribe((state) => {
        if (state === 'connected' || state === 'failed' || state === 'closed')
          this.#admission.settled(target); // its set-up is over: the next one may start
      }).unSubscribe,
    );
    // Waiting for its turn to be set up (HandshakeGate) is not failing to connect; and a
    // subscriber's RTCP is about what it got, so once connected it is silent till its first
    // packet (its publishers may still be waiting their turn).
    const subscribed = () =>
      pc.connectionState === 'connected'
        ? [...this.subscriptions.values()].some((s) => s.bytesOut > 0)
        : this.subscriptions.size > 0;
    const carriesStreams = () =>
      this.#admission.admittedAt(target) > 0 &&
      (target === 'publisher' ? this.publications.size > 0 : subscribed());
    const watch = new PeerLiveness(pc, {
      timeoutMs: this.#config.peerTimeoutMs,
      // The stall-proof clock: when the node resumes from a stop, the check runs before the
      // RTCP waiting in the socket is read (docs/ARCHITECTURE.md, Liveness).
      clock: this.#stalls,
      carriesStreams,
      onDead: (why) => {
        if (this.#closed) return;
        this.#logger.warn({ target, why }, 'PeerConnection is dead');
        this.safeEmit('failed');
      },
    });
    this.#liveness.push(watch);
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError(`participant ${this.sessionId} is closed`);
  }

  /** Closes both PeerConnections, every publication (and so every subscription to them). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#admission.close();
    for (const watch of this.#liveness.splice(0)) watch.close();
    for (const off of this.#werift.splice(0)) off();
    // The publisher's close emits `unpublished` for each publication (through this object).
    await Promise.allSettled([this.#subscriber.close(), this.#publisher.close()]);
    this.removeAllListeners();
  }
}
