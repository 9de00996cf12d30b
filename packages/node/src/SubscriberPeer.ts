import {
  type ClientMessageOf,
  type IceCandidate,
  InvalidStateError,
  type Logger,
  type NodeConfig,
  type ServerMessage,
  SfuError,
  type SubscribedTrack,
} from '@geosfu/common';
import {
  type BandwidthBudget,
  preferPassiveDtls,
  subscriberPeerConfig,
  TransportCongestionControl,
  TransportSweeper,
  udpReceiveBufferHook,
} from '@geosfu/media';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpCodecParameters,
  type RTCRtpTransceiver,
} from 'werift';
import { addCandidate } from './addCandidate.js';
import { LayerAllocator } from './LayerAllocator.js';
import type { NodeMetrics } from './metrics.js';
import type { PeerAdmission } from './PeerAdmission.js';
import type { Publication } from './Publication.js';
import { Subscription, type SubscriptionSettings } from './Subscription.js';

/** How long the client has to answer a subscriber offer. */
const SUBSCRIBER_ANSWER_TIMEOUT_MS = 15_000;
/** How often the estimate toward the subscriber is sampled into sfu_subscriber_estimate_bps. */
const ESTIMATE_SAMPLE_MS = 1_000;

/**
 * The subscribing half of a participant: the PeerConnection the node offers on, one
 * `sendonly` transceiver per subscription. The node offers and the client answers, so the
 * two sides never offer on the same connection (docs/PROTOCOL.md). One offer at a time;
 * changes made meanwhile coalesce into the next one.
 *
 * A WHEP viewer turns this around (`viewer`): the client offers recvonly m-lines once and the
 * node answers (`answerOffer`); WHEP has no way for the node to offer again, so each of the
 * offer's m-lines is a slot that carries one subscribed publication of its kind at a time,
 * and a publication that finds no free slot waits for one.
 */
export class SubscriberPeer {
  readonly #sessionId: string;
  readonly #config: NodeConfig;
  readonly #metrics: NodeMetrics;
  readonly #logger: Logger;
  readonly #admission: PeerAdmission;
  readonly #send: (message: ServerMessage) => void;
  readonly #onPeerConnection: (pc: RTCPeerConnection) => void;
  readonly #onFirstMedia: () => void;
  #pc: RTCPeerConnection | undefined;
  #sweeper: TransportSweeper | undefined;
  /** Bandwidth estimation toward the subscriber, once its DTLS transport exists. */
  #congestion: TransportCongestionControl | undefined;
  #estimateTimer: NodeJS.Timeout | undefined;
  readonly #budget: BandwidthBudget;
  #probesCounted = 0;
  #pacedCounted = 0;
  #resentCounted = 0;
  #skippedCounted = 0;
  /** Keyed by the publication's trackId. */
  readonly #subscriptions = new Map<string, Subscription>();
  #negotiating = false;
  #renegotiate = false;
  #answerTimer: NodeJS.Timeout | undefined;
  #pendingCandidates: IceCandidate[] = [];
  /** No offer goes out before the client has its `joined` reply. */
  #started = false;
  readonly #werift: (() => void)[] = [];
  /** Chooses the simulcast layer of each video (created with the peer, closed with it). */
  readonly #allocator: LayerAllocator;
  /** WHEP: the client offers, the node answers, once. */
  readonly #viewer: boolean;
  /** WHEP: publications subscribed to that wait for a free m-line of their kind. */
  #waiting: Publication[] = [];
  #closed = false;

  constructor(options: {
    sessionId: string;
    config: NodeConfig;
    metrics: NodeMetrics;
    logger: Logger;
    admission: PeerAdmission;
    send: (message: ServerMessage) => void;
    /** Called once when the PeerConnection is created, so that its liveness can be watched. */
    onPeerConnection: (pc: RTCPeerConnection) => void;
    /** First media packet sent to this participant (join time metric). */
    onFirstMedia: () => void;
    /** WHEP: the client offers (`answerOffer`) and the node never does. */
    viewer?: boolean;
  }) {
    this.#sessionId = options.sessionId;
    this.#config = options.config;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#admission = options.admission;
    this.#send = options.send;
    this.#onPeerConnection = options.onPeerConnection;
    this.#onFirstMedia = options.onFirstMedia;
    this.#viewer = options.viewer ?? false;
    // A view for the allocator, which exists before the transport and its estimator do.
    const congestion = () => this.#congestion;
    this.#budget = {
      get estimateBps() {
        return congestion()?.estimateBps;
      },
      get provenAt() {
        return congestion()?.provenAt;
      },
      get shownBps() {
        return congestion()?.shownBps;
      },
      probe: (targetBps: number) => this.#congestion?.probe(targetBps),
    };
    this.#allocator = new LayerAllocator({
      budget: this.#budget,
      subscriptions: () => this.#subscriptions.values(),
      logger: this.#logger,
    });
  }

  get pc(): RTCPeerConnection | undefined {
    return this.#pc;
  }

  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions;
  }

  /**
   * What the subscriber's downlink carries (transport-wide congestion control on its
   * PeerConnection): the budget its layer allocator spends. No estimate (everything fits)
   * until the transport's first feedback.
   */
  get budget(): BandwidthBudget {
    return this.#budget;
  }

  /** Called once `joined` has been sent: from now on the node may offer. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#renegotiate) this.#negotiate();
  }

  /** Forwards a publication to this participant; renegotiates. */
  subscribe(publication: Publication): void {
    this.#assertOpen();
    if (this.#subscriptions.has(publication.trackId) || publication.closed) return;
    if (this.#viewer) {
      this.#waiting = this.#waiting.filter((p) => !p.closed && p !== publication);
      this.#waiting.push(publication);
      this.#bindWaiting();
      return;
    }
    const pc = this.#pc ?? this.#create();
    // A local track only carries the codec, so that werift negotiates exactly the publisher's
    // codec (H264 profile included) on this m-line. Packets go to the sender directly.
    const codecCarrier = new MediaStreamTrack({ kind: publication.kind, codec: publication.codec });
    const transceiver = pc.addTransceiver(codecCarrier, { direction: 'sendonly' });
    this.#addSubscription(publication, transceiver);
    this.#negotiate();
  }

  #addSubscription(publication: Publication, transceiver: RTCRtpTransceiver): Subscription {
    const subscription = new Subscription({
      publication,
      transceiver,
      metrics: this.#metrics,
      logger: this.#logger,
      onClose: (s) => this.#onSubscriptionClosed(s),
      onFirstPacket: this.#onFirstMedia,
      onLayer: (s, layer) => this.#onLayer(s, layer),
      onLayersChanged: () => this.#allocator.update(),
    });
    this.#subscriptions.set(publication.trackId, subscription);
    this.#allocator.update();
    return subscription;
  }

  /**
   * WHEP: answers the viewer's offer. Its m-lines become `sendonly` slots (pitfall 4: with
   * sendrecv the viewer's PLIs would go to the receiver), and the publications waiting for
   * one are bound to them.
   */
  async answerOffer(sdp: string): Promise<string> {
    this.#assertOpen();
    if (!this.#viewer || this.#pc)
      throw new SfuError('NEGOTIATION_FAILED', 'this subscriber does not take an offer now');
    await this.#admission.admit('subscriber'); // its turn, or SERVICE_BUSY
    this.#assertOpen();
    const pc = this.#create();
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      for (const t of pc.getTransceivers()) t.setDirection('sendonly');
      const created = await pc.createAnswer();
      await pc.setLocalDescription({ type: 'answer', sdp: preferPassiveDtls(created.sdp) });
    } catch (error) {
      throw new SfuError('INVALID_SDP', `the offer was rejected: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      this.#sweeper?.sweep();
    }
    this.#assertOpen();
    const slots = pc.getTransceivers().filter((t) => t.codecs.length > 0);
    if (!slots.some((t) => t.kind === 'audio' || t.kind === 'video')) {
      throw new SfuError(
        'NEGOTIATION_FAILED',
        'no m-line of the offer has a codec the node sends (Opus, VP8, H264)',
      );
    }
    this.#watchCongestion(slots);
    this.#bindWaiting();
    return pc.localDescription?.sdp ?? '';
  }

  /** WHEP: gives each waiting publication a free m-line of its kind that has its codec. */
  #bindWaiting(): void {
    const pc = this.#pc;
    if (!this.#viewer || this.#closed || !pc?.localDescription) return;
    const used = new Set([...this.#subscriptions.values()].map((s) => s.transceiver));
    const waiting: Publication[] = [];
    for (const publication of this.#waiting) {
      if (publication.closed || this.#subscriptions.has(publication.trackId)) continue;
      let bound = false;
      for (const transceiver of pc.getTransceivers()) {
        if (used.has(transceiver) || transceiver.kind !== publication.kind) continue;
        const codec = sameCodec(transceiver.codecs, publication.codec);
        if (!codec) continue;
        // The viewer accepted every codec of its answer on this m-line: send with the one
        // the publisher encodes (werift's sender stamps its payload type on each packet).
        transceiver.sender.codec = codec;
        used.add(transceiver);
        const subscription = this.#addSubscription(publication, transceiver);
        if (pc.connectionState === 'connected') subscription.requestKeyframe();
        bound = true;
        break;
      }
      if (!bound) waiting.push(publication);
    }
    this.#waiting = waiting;
  }

  /**
   * How the subscriber shows a video it receives (`subscription.settings`); the allocator
   * applies it at once. TRACK_NOT_FOUND for a track this participant does not receive.
   */
  updateSettings(trackId: string, settings: SubscriptionSettings): void {
    this.#assertOpen();
    const subscription = this.#subscriptions.get(trackId);
    if (!subscription)
      throw new SfuError(
        'TRACK_NOT_FOUND',
        `this participant does not receive a track "${trackId}"`,
      );
    subscription.settings = settings;
    subscription.settingsChanged = true;
    this.#allocator.update();
  }

  /** The subscriber now gets another layer of a simulcast video (or none): tell it. */
  #onLayer(subscription: Subscription, layer: number): void {
    const publication = subscription.publication;
    if (!publication.simulcast || this.#closed) return;
    const info = layer >= 0 ? publication.layers[layer] : undefined;
    this.#send({
      type: 'subscription.layer',
      trackId: publication.trackId,
      rid: info?.rid ?? null,
      width: info?.width ?? 0,
      height: info?.height ?? 0,
    });
  }

  unsubscribe(trackId: string): void {
    this.#waiting = this.#waiting.filter((p) => p.trackId !== trackId);
    this.#subscriptions.get(trackId)?.close();
  }

  #onSubscriptionClosed(subscription: Subscription): void {
    this.#subscriptions.delete(subscription.publication.trackId);
    if (this.#viewer) {
      // The m-line stays (WHEP cannot renegotiate): a waiting publication may take it.
      if (this.#closed) return;
      this.#allocator.update();
      this.#bindWaiting();
      return;
    }
    this.#congestion?.removeSender(subscription.transceiver.sender);
    if (this.#closed || !this.#pc) return;
    this.#allocator.update();
    try {
      this.#pc.removeTrack(subscription.transceiver.sender);
    } catch (error) {
      this.#logger.warn({ err: error }, 'removeTrack failed');
    }
    this.#negotiate();
  }

  #create(): RTCPeerConnection {
    const pc = new RTCPeerConnection(subscriberPeerConfig(this.#config));
    this.#pc = pc;
    this.#sweeper = new TransportSweeper(
      pc,
      this.#logger,
      udpReceiveBufferHook(this.#config.udpReceiveBuffer, this.#logger),
    );
    this.#onPeerConnection(pc);
    this.#werift.push(
      pc.connectionStateChange.subscribe((state) => {
        if (state !== 'connected') return;
        // A subscriber that just connected needs a keyframe of everything it receives.
        for (const s of this.#subscriptions.values()) s.requestKeyframe();
        if (this.#renegotiate) this.#negotiate(); // changes held while it connected
      }).unSubscribe,
    );
    return pc;
  }

  /** Offers the current set of subscriptions; one offer at a time, changes meanwhile coalesce. */
  #negotiate(): void {
    if (this.#closed || this.#viewer) return;
    const pc = this.#pc;
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
        this.#sweeper?.sweep();
        this.#watchCongestion([...this.#subscriptions.values()].map((s) => s.transceiver));
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
          this.#negotiate();
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

  async answer(request: ClientMessageOf<'subscriber.answer'>): Promise<void> {
    this.#assertOpen();
    const pc = this.#pc;
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
      this.#sweeper?.sweep();
    }
    clearTimeout(this.#answerTimer);
    this.#negotiating = false;
    for (const candidate of this.#pendingCandidates.splice(0))
      await addCandidate(pc, candidate, this.#logger);
    if (pc.connectionState === 'connected') {
      for (const s of this.#subscriptions.values()) s.requestKeyframe();
    }
    if (this.#renegotiate) this.#negotiate();
  }

  /**
   * Creates the transport's congestion control once the (bundled) DTLS transport exists, and
   * hands it every sender. With max-bundle there is one transport for the PeerConnection's life.
   */
  #watchCongestion(transceivers: readonly RTCRtpTransceiver[]): void {
    if (this.#closed) return;
    for (const transceiver of transceivers) {
      const sender = transceiver.sender;
      const transport = sender.dtlsTransport;
      if (!transport) continue;
      if (!this.#congestion) {
        this.#congestion = new TransportCongestionControl({ transport, logger: this.#logger });
        this.#estimateTimer = setInterval(() => this.#sampleCongestion(true), ESTIMATE_SAMPLE_MS);
        this.#estimateTimer.unref();
      }
      this.#congestion.addSender(sender);
    }
  }

  /**
   * The estimate into its histogram (`estimate`); the probes, paced packets and retransmissions
   * since last time into their counters.
   */
  #sampleCongestion(estimate: boolean): void {
    const congestion = this.#congestion;
    if (!congestion) return;
    const bps = congestion.estimateBps;
    if (estimate && bps !== undefined) this.#metrics.subscriberEstimate.observe(bps);
    this.#metrics.subscriberProbes.inc(congestion.probes - this.#probesCounted);
    this.#probesCounted = congestion.probes;
    const paced = congestion.pacer.pacedPackets;
    this.#metrics.subscriberPacedPackets.inc(paced - this.#pacedCounted);
    this.#pacedCounted = paced;
    const { resent, skipped } = congestion.retransmissions;
    this.#metrics.subscriberRetransmissions.inc(
      { outcome: 'resent' },
      resent - this.#resentCounted,
    );
    this.#metrics.subscriberRetransmissions.inc(
      { outcome: 'skipped' },
      skipped - this.#skippedCounted,
    );
    this.#resentCounted = resent;
    this.#skippedCounted = skipped;
  }

  async trickle(candidate: IceCandidate): Promise<void> {
    const pc = this.#pc;
    if (!pc)
      throw new SfuError(
        'NEGOTIATION_FAILED',
        'no subscriber PeerConnection yet: send the offer first',
      );
    if (!pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await addCandidate(pc, candidate, this.#logger);
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError(`participant ${this.#sessionId} is closed`);
  }

  /** Ends every subscription and closes the PeerConnection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting = [];
    this.#allocator.close();
    clearTimeout(this.#answerTimer);
    clearInterval(this.#estimateTimer);
    this.#sampleCongestion(false);
    this.#congestion?.close();
    for (const off of this.#werift.splice(0)) off();
    for (const s of [...this.#subscriptions.values()]) s.close();
    this.#pc = undefined;
    await this.#sweeper?.close();
  }
}

/**
 * The codec of `offered` (an m-line's negotiated codecs) that carries what `codec` encodes:
 * the same MIME type and, for H264, the same profile-level-id and packetization-mode (a
 * decoder set up for one profile may refuse another: pitfall 6).
 */
function sameCodec(
  offered: readonly RTCRtpCodecParameters[],
  codec: RTCRtpCodecParameters,
): RTCRtpCodecParameters | undefined {
  const mime = codec.mimeType.toLowerCase();
  const candidates = offered.filter((c) => c.mimeType.toLowerCase() === mime);
  if (mime !== 'video/h264') return candidates[0];
  const key = (c: RTCRtpCodecParameters) => {
    const params = new Map(
      (c.parameters ?? '').split(';').map((kv) => {
        const [k = '', v = ''] = kv.trim().split('=');
        return [k.toLowerCase(), v.toLowerCase()] as const;
      }),
    );
    return `${params.get('profile-level-id') ?? '42001f'}/${params.get('packetization-mode') ?? '0'}`;
  };
  return candidates.find((c) => key(c) === key(codec));
}
