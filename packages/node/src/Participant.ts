import {
  type ClientMessageOf,
  type Grants,
  type IceCandidate,
  InvalidStateError,
  LIMITS,
  type Logger,
  type NodeConfig,
  type ParticipantInfo,
  type PeerTarget,
  type ServerMessage,
  SfuError,
  type StallDetector,
  type SubscribedTrack,
  TypedEmitter,
} from '@geosfu/common';
import {
  fixNackWraparound,
  PeerLiveness,
  pliPacket,
  preferPassiveDtls,
  publisherPeerConfig,
  rembPacket,
  subscriberPeerConfig,
  TransportSweeper,
} from '@geosfu/media';
import { MediaStreamTrack, RTCPeerConnection, type RTCRtpTransceiver } from 'werift';
import type { HandshakeGate } from './HandshakeGate.js';
import type { NodeMetrics } from './metrics.js';
import { PeerAdmission } from './PeerAdmission.js';
import { Publication } from './Publication.js';
import { checkPublishOffer, type PublishOffer } from './publishOffer.js';
import { Subscription } from './Subscription.js';

export type ParticipantEvents = {
  /** A track of this participant is ready to be forwarded. */
  published: [Publication];
  unpublished: [Publication];
  /** A PeerConnection failed for longer than the grace period. */
  failed: [];
  /** First media packet sent to this participant (join time metric). */
  firstMediaOut: [];
};

/** How long the client has to answer a subscriber offer. */
const SUBSCRIBER_ANSWER_TIMEOUT_MS = 15_000;
/** REMB is resent periodically: browsers let an estimate expire. */
const REMB_INTERVAL_MS = 1_000;

/**
 * A participant: one websocket session in one room, with up to two PeerConnections. The
 * client offers on the publisher PC and the node offers on the subscriber PC, so the two
 * sides never offer on the same connection and renegotiation cannot collide (docs/PROTOCOL.md).
 */
export class Participant extends TypedEmitter<ParticipantEvents> {
  readonly sessionId: string;
  readonly identity: string;
  readonly name: string;
  readonly grants: Grants;
  readonly joinedAt = Date.now();
  readonly autoSubscribe: boolean;
  #config: NodeConfig;
  #stalls: StallDetector;
  #metrics: NodeMetrics;
  #logger: Logger;
  #send: (message: ServerMessage) => void;
  #publisher: RTCPeerConnection | undefined;
  #subscriber: RTCPeerConnection | undefined;
  /** One per PeerConnection: closes it and every transport werift gave it. */
  #sweepers = new Map<RTCPeerConnection, TransportSweeper>();
  /** The last publish offer accepted: the next one keeps its ICE credentials and m-lines. */
  #lastOffer: PublishOffer | undefined;
  #publications = new Map<string, Publication>();
  /** Keyed by the publication's trackId. */
  #subscriptions = new Map<string, Subscription>();
  #negotiating = false;
  #renegotiate = false;
  #answerTimer: NodeJS.Timeout | undefined;
  #pendingSubscriberCandidates: IceCandidate[] = [];
  #liveness: PeerLiveness[] = [];
  #rembTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Unsubscribers of every werift event this participant listens to, called on close. */
  #werift: (() => void)[] = [];
  #admission: PeerAdmission;
  /** No subscriber offer goes out before the client has its `joined` reply. */
  #started = false;

  constructor(options: {
    sessionId: string;
    identity: string;
    name: string;
    grants: Grants;
    autoSubscribe: boolean;
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
    this.grants = options.grants;
    this.autoSubscribe = options.autoSubscribe;
    this.#config = options.config;
    this.#stalls = options.stalls;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#send = options.send;
    this.#admission = new PeerAdmission(options.handshakes);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get publications(): ReadonlyMap<string, Publication> {
    return this.#publications;
  }

  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions;
  }

  /** The werift PeerConnections, for stats. */
  get peerConnections(): { publisher?: RTCPeerConnection; subscriber?: RTCPeerConnection } {
    return { publisher: this.#publisher, subscriber: this.#subscriber };
  }

  info(nodeId: string, region: string): ParticipantInfo {
    return {
      sessionId: this.sessionId,
      identity: this.identity,
      name: this.name,
      joinedAt: this.joinedAt,
      nodeId,
      region,
      tracks: [...this.#publications.values()].map((p) => p.info()),
    };
  }

  /** Called once `joined` has been sent: from now on the node may offer. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#renegotiate) this.#negotiateSubscriber();
  }

  send(message: ServerMessage): void {
    if (!this.#closed) this.#send(message);
  }

  // -------------------------------------------------------------------------------------
  // Publishing (client offers)
  // -------------------------------------------------------------------------------------

  async publish(request: ClientMessageOf<'publish'>): Promise<ServerMessage> {
    this.#assertOpen();
    if (!this.grants.canPublish)
      throw new SfuError('PERMISSION_DENIED', 'this token does not allow publishing');
    const offer = checkPublishOffer(request.sdp, this.#lastOffer);
    const { sections } = offer;
    const known = new Set([...this.#publications.values()].map((p) => this.#midOf(p)));
    for (const track of request.tracks) {
      const section = sections.find((s) => s.mid === track.mid);
      if (!section)
        throw new SfuError('INVALID_SDP', `the offer has no m-line with mid "${track.mid}"`);
      if (section.kind !== track.kind) {
        throw new SfuError(
          'INVALID_SDP',
          `m-line "${track.mid}" is ${section.kind}, not ${track.kind}`,
        );
      }
      if (section.direction !== 'sendonly' && section.direction !== 'sendrecv') {
        throw new SfuError(
          'INVALID_SDP',
          `m-line "${track.mid}" must be sendonly to publish (it is ${section.direction})`,
        );
      }
    }
    const newTracks = request.tracks.filter((t) => !known.has(t.mid));
    if (this.#publications.size + newTracks.length > LIMITS.maxTracksPerParticipant) {
      throw new SfuError(
        'TOO_MANY_TRACKS',
        `at most ${LIMITS.maxTracksPerParticipant} tracks per participant`,
      );
    }

    if (!this.#publisher) await this.#admission.admit('publisher'); // its turn, or SERVICE_BUSY
    this.#assertOpen();
    const pc = this.#publisher ?? this.#createPublisher();
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: request.sdp });
    } catch (error) {
      this.#sweepers.get(pc)?.sweep();
      throw new SfuError('INVALID_SDP', `the offer was rejected: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.#lastOffer = offer;
    let answer: { sdp: string };
    try {
      const created = await pc.createAnswer();
      await pc.setLocalDescription({ type: 'answer', sdp: preferPassiveDtls(created.sdp) });
      answer = { sdp: pc.localDescription?.sdp ?? created.sdp };
    } catch (error) {
      throw new SfuError(
        'NEGOTIATION_FAILED',
        `could not answer the offer: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      this.#sweepers.get(pc)?.sweep();
    }
    this.#assertOpen();

    const mapped: { mid: string; trackId: string }[] = [];
    for (const track of request.tracks) {
      const existing = [...this.#publications.values()].find((p) => this.#midOf(p) === track.mid);
      if (existing) {
        mapped.push({ mid: track.mid, trackId: existing.trackId });
        continue;
      }
      const transceiver = pc.getTransceivers().find((t) => t.mid === track.mid);
      const codec = transceiver?.codecs[0];
      if (!transceiver || !codec) {
        throw new SfuError(
          'NEGOTIATION_FAILED',
          `no common ${track.kind} codec for m-line "${track.mid}"; the node supports Opus, VP8 and H264`,
        );
      }
      const publication = new Publication({
        kind: track.kind,
        source: track.source,
        participantSid: this.sessionId,
        identity: this.identity,
        codec,
        metrics: this.#metrics,
        logger: this.#logger,
        origin: {
          path: 'client',
          requestKeyframe: () => this.#sendPli(transceiver),
        },
      });
      this.#publicationMids.set(publication, track.mid);
      this.#publications.set(publication.trackId, publication);
      const attached = new WeakSet<MediaStreamTrack>();
      const attach = (remote: MediaStreamTrack) => {
        if (attached.has(remote)) return;
        attached.add(remote);
        const off = remote.onReceiveRtp.subscribe((rtp) => publication.forward(rtp)).unSubscribe;
        publication.once('close', off);
      };
      this.#werift.push(
        transceiver.onTrack.subscribe(attach).unSubscribe,
        transceiver.receiver.onPacketLost.subscribe(() =>
          this.#metrics.nack.inc({ direction: 'out' }),
        ).unSubscribe,
      );
      if (track.kind === 'video' && !fixNackWraparound(transceiver.receiver)) {
        this.#logger.warn('werift internals changed: NACK wraparound fix not applied');
      }
      // werift may already have created the track during setRemoteDescription.
      for (const remote of transceiver.receiver.tracks) attach(remote);
      mapped.push({ mid: track.mid, trackId: publication.trackId });
      this.safeEmit('published', publication);
    }
    return {
      type: 'publish.answer',
      ...(request.id ? { ref: request.id } : {}),
      sdp: answer.sdp,
      tracks: mapped,
    };
  }

  #publicationMids = new WeakMap<Publication, string>();

  #midOf(publication: Publication): string | undefined {
    return this.#publicationMids.get(publication);
  }

  unpublish(trackId: string): void {
    this.#assertOpen();
    const publication = this.#publications.get(trackId);
    if (!publication)
      throw new SfuError('TRACK_NOT_FOUND', `no track "${trackId}" published by this participant`);
    this.#publications.delete(trackId);
    publication.close();
    this.safeEmit('unpublished', publication);
  }

  mute(trackId: string, muted: boolean): Publication {
    this.#assertOpen();
    const publication = this.#publications.get(trackId);
    if (!publication)
      throw new SfuError('TRACK_NOT_FOUND', `no track "${trackId}" published by this participant`);
    publication.setMuted(muted);
    if (!muted) publication.requestKeyframe();
    return publication;
  }

  #createPublisher(): RTCPeerConnection {
    const pc = new RTCPeerConnection(publisherPeerConfig(this.#config));
    this.#publisher = pc;
    this.#sweepers.set(pc, new TransportSweeper(pc, this.#logger));
    this.#watchConnection(pc, 'publisher');
    this.#werift.push(
      pc.connectionStateChange.subscribe((state) => {
        if (state === 'connected') {
          this.#sendRemb();
          for (const p of this.#publications.values()) p.requestKeyframe();
        }
      }).unSubscribe,
    );
    this.#rembTimer = setInterval(() => this.#sendRemb(), REMB_INTERVAL_MS);
    return pc;
  }

  /**
   * Pitfall 3: werift never sends REMB and transport-cc is not negotiated, so without this the
   * publisher's bandwidth estimate stays at its start value. We grant the configured bitrate.
   */
  #sendRemb(): void {
    const pc = this.#publisher;
    if (pc?.connectionState !== 'connected') return;
    const videos = pc.getTransceivers().filter((t) => t.kind === 'video');
    const ssrcs = videos
      .flatMap((t) => t.receiver.tracks.map((track) => track.ssrc))
      .filter((s): s is number => typeof s === 'number');
    const first = videos[0];
    if (!first || ssrcs.length === 0) return;
    first.receiver.dtlsTransport
      .sendRtcp([rembPacket(first.receiver.rtcpSsrc, ssrcs, this.#config.maxPublishBitrate)])
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'REMB send failed'));
  }

  #sendPli(transceiver: RTCRtpTransceiver): void {
    const ssrc = transceiver.receiver.tracks[0]?.ssrc;
    if (ssrc === undefined) return;
    // An explicit PLI rather than receiver.sendRtcpPLI, which does nothing unless "nack pli"
    // was negotiated (pitfall 4); a browser always accepts PLI for video.
    transceiver.receiver.dtlsTransport
      .sendRtcp([pliPacket(transceiver.receiver.rtcpSsrc, ssrc)])
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'PLI send failed'));
  }

  // -------------------------------------------------------------------------------------
  // Subscribing (node offers)
  // -------------------------------------------------------------------------------------

  /** Forwards a publication to this participant; renegotiates the subscriber PC. */
  subscribe(publication: Publication): void {
    this.#assertOpen();
    if (
      !this.grants.canSubscribe ||
      this.#subscriptions.has(publication.trackId) ||
      publication.closed
    )
      return;
    const pc = this.#subscriber ?? this.#createSubscriber();
    // A local track only carries the codec, so that werift negotiates exactly the publisher's
    // codec (H264 profile included) on this m-line. Packets go to the sender directly.
    const codecCarrier = new MediaStreamTrack({ kind: publication.kind, codec: publication.codec });
    const transceiver = pc.addTransceiver(codecCarrier, { direction: 'sendonly' });
    const subscription = new Subscription({
      publication,
      transceiver,
      metrics: this.#metrics,
      logger: this.#logger,
      onClose: (s) => this.#onSubscriptionClosed(s),
      onFirstPacket: () => this.safeEmit('firstMediaOut'),
    });
    this.#subscriptions.set(publication.trackId, subscription);
    this.#negotiateSubscriber();
  }

  unsubscribe(trackId: string): void {
    this.#subscriptions.get(trackId)?.close();
  }

  #onSubscriptionClosed(subscription: Subscription): void {
    this.#subscriptions.delete(subscription.publication.trackId);
    if (this.#closed || !this.#subscriber) return;
    try {
      this.#subscriber.removeTrack(subscription.transceiver.sender);
    } catch (error) {
      this.#logger.warn({ err: error }, 'removeTrack failed');
    }
    this.#negotiateSubscriber();
  }

  #createSubscriber(): RTCPeerConnection {
    const pc = new RTCPeerConnection(subscriberPeerConfig(this.#config));
    this.#subscriber = pc;
    this.#sweepers.set(pc, new TransportSweeper(pc, this.#logger));
    this.#watchConnection(pc, 'subscriber');
    this.#werift.push(
      pc.connectionStateChange.subscribe((state) => {
        if (state !== 'connected') return;
        // A subscriber that just connected needs a keyframe of everything it receives.
        for (const s of this.#subscriptions.values()) s.publication.requestKeyframe();
        if (this.#renegotiate) this.#negotiateSubscriber(); // changes held while it connected
      }).unSubscribe,
    );
    return pc;
  }

  /** Offers the current set of subscriptions; one offer at a time, changes meanwhile coalesce. */
  #negotiateSubscriber(): void {
    if (this.#closed) return;
    const pc = this.#subscriber;
    // werift fails a PC renegotiated before its first ICE+DTLS set-up is done: hold changes.
    const settingUp = pc?.remoteDescription && /^(new|connecting)$/.test(pc.connectionState);
    if (this.#negotiating || !this.#started || settingUp) {
      this.#renegotiate = true;
      return;
    }
    if (!pc) return;
    this.#negotiating = true;
    this.#renegotiate = false;
    void (async () => {
      try {
        await this.#admission.admit('subscriber', (busy) => this.#send({ type: 'error', ...busy }));
      } catch {
        return; // the participant closed while the offer waited its turn
      }
      try {
        if (this.#closed) return;
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        this.#sweepers.get(pc)?.sweep();
        if (this.#closed) return;
        const tracks: SubscribedTrack[] = [];
        for (const s of this.#subscriptions.values()) {
          if (s.mid === null) continue;
          tracks.push({
            mid: s.mid,
            trackId: s.publication.trackId,
            participantSid: s.publication.participantSid,
            identity: s.publication.identity,
            kind: s.publication.kind,
          });
        }
        this.#answerTimer = setTimeout(() => {
          this.#logger.warn('subscriber answer timed out; offering again');
          this.#negotiating = false;
          this.#negotiateSubscriber();
        }, SUBSCRIBER_ANSWER_TIMEOUT_MS);
        this.#send({
          type: 'subscriber.offer',
          sdp: pc.localDescription?.sdp ?? offer.sdp,
          tracks,
        });
      } catch (error) {
        this.#negotiating = false;
        this.#logger.error({ err: error }, 'subscriber offer failed');
      }
    })();
  }

  async subscriberAnswer(request: ClientMessageOf<'subscriber.answer'>): Promise<void> {
    this.#assertOpen();
    const pc = this.#subscriber;
    if (pc?.signalingState !== 'have-local-offer') {
      throw new SfuError('NEGOTIATION_FAILED', 'no subscriber offer is waiting for an answer');
    }
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: request.sdp });
    } catch (error) {
      throw new SfuError('INVALID_SDP', `the answer was rejected: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      this.#sweepers.get(pc)?.sweep();
    }
    clearTimeout(this.#answerTimer);
    this.#negotiating = false;
    for (const candidate of this.#pendingSubscriberCandidates.splice(0))
      await this.#addCandidate(pc, candidate);
    if (pc.connectionState === 'connected') {
      for (const s of this.#subscriptions.values()) s.publication.requestKeyframe();
    }
    if (this.#renegotiate) this.#negotiateSubscriber();
  }

  async trickle(target: PeerTarget, candidate: IceCandidate | null): Promise<void> {
    this.#assertOpen();
    if (candidate === null) return; // end of candidates: nothing to do for an ICE-lite node
    const pc = target === 'publisher' ? this.#publisher : this.#subscriber;
    if (!pc)
      throw new SfuError(
        'NEGOTIATION_FAILED',
        `no ${target} PeerConnection yet: send the offer first`,
      );
    if (target === 'subscriber' && !pc.remoteDescription) {
      this.#pendingSubscriberCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(pc, candidate);
  }

  async #addCandidate(pc: RTCPeerConnection, candidate: IceCandidate): Promise<void> {
    try {
      await pc.addIceCandidate({
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? undefined,
        sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
        usernameFragment: candidate.usernameFragment ?? undefined,
      });
    } catch (error) {
      // A candidate we cannot use (mDNS .local, TCP, another family) is not fatal: ICE
      // proceeds with the others and the node, being ICE-lite, learns peer-reflexive ones.
      this.#logger.debug({ err: error, candidate: candidate.candidate }, 'ignored ICE candidate');
    }
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
        ? [...this.#subscriptions.values()].some((s) => s.bytesOut > 0)
        : this.#subscriptions.size > 0;
    const carriesStreams = () =>
      this.#admission.admittedAt(target) > 0 &&
      (target === 'publisher' ? this.#publications.size > 0 : subscribed());
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
    clearTimeout(this.#answerTimer);
    clearInterval(this.#rembTimer);
    for (const watch of this.#liveness.splice(0)) watch.close();
    for (const off of this.#werift.splice(0)) off();
    for (const s of [...this.#subscriptions.values()]) s.close();
    for (const p of [...this.#publications.values()]) {
      p.close();
      this.safeEmit('unpublished', p);
    }
    this.#publications.clear();
    this.#publisher = undefined;
    this.#subscriber = undefined;
    const sweepers = [...this.#sweepers.values()];
    this.#sweepers.clear();
    await Promise.allSettled(sweepers.map((s) => s.close()));
    this.removeAllListeners();
  }
}
