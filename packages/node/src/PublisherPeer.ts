import {
  type ClientMessageOf,
  type IceCandidate,
  InvalidStateError,
  LIMITS,
  type Logger,
  type NodeConfig,
  type ServerMessage,
  SfuError,
  TypedEmitter,
} from '@geosfu/common';
import {
  fixNackWraparound,
  pliPacket,
  preferPassiveDtls,
  publisherPeerConfig,
  rembPacket,
  silenceWeriftTwcc,
  TRANSPORT_CC_URI,
  TransportSweeper,
  TwccFeedback,
  udpReceiveBufferHook,
} from '@geosfu/media';
import { type MediaStreamTrack, RTCPeerConnection, type RTCRtpTransceiver } from 'werift';
import { addCandidate } from './addCandidate.js';
import type { NodeMetrics } from './metrics.js';
import type { PeerAdmission } from './PeerAdmission.js';
import { Publication } from './Publication.js';
import { checkPublishOffer, checkTrackLayers, type PublishOffer } from './publishOffer.js';

export type PublisherPeerEvents = {
  /** A track is ready to be forwarded. */
  published: [Publication];
  unpublished: [Publication];
};

/** REMB is resent periodically: browsers let an estimate expire. */
const REMB_INTERVAL_MS = 1_000;

/**
 * The publishing half of a participant: the PeerConnection the client offers on, and the
 * publications it carries. Created on the first `publish`; the participant closes it.
 */
export class PublisherPeer extends TypedEmitter<PublisherPeerEvents> {
  readonly #sessionId: string;
  readonly #identity: string;
  readonly #config: NodeConfig;
  readonly #metrics: NodeMetrics;
  readonly #logger: Logger;
  readonly #admission: PeerAdmission;
  readonly #onPeerConnection: (pc: RTCPeerConnection) => void;
  readonly #send: (message: ServerMessage) => void;
  #pc: RTCPeerConnection | undefined;
  #sweeper: TransportSweeper | undefined;
  /** The last publish offer accepted: the next one keeps its ICE credentials and m-lines. */
  #lastOffer: PublishOffer | undefined;
  readonly #publications = new Map<string, Publication>();
  readonly #mids = new WeakMap<Publication, string>();
  #rembTimer: NodeJS.Timeout | undefined;
  /** Transport-wide CC feedback to the publisher, from its first accepted offer on. */
  #feedback: TwccFeedback | undefined;
  /** Unsubscribers of every werift event listened to, called on close. */
  readonly #werift: (() => void)[] = [];
  #closed = false;

  constructor(options: {
    sessionId: string;
    identity: string;
    config: NodeConfig;
    metrics: NodeMetrics;
    logger: Logger;
    admission: PeerAdmission;
    /** Called once when the PeerConnection is created, so that its liveness can be watched. */
    onPeerConnection: (pc: RTCPeerConnection) => void;
    /** Sends a message to this participant's client (dynacast's `publication.layers`). */
    send: (message: ServerMessage) => void;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'publisher listener threw'),
    );
    this.#sessionId = options.sessionId;
    this.#identity = options.identity;
    this.#config = options.config;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#admission = options.admission;
    this.#onPeerConnection = options.onPeerConnection;
    this.#send = options.send;
  }

  get pc(): RTCPeerConnection | undefined {
    return this.#pc;
  }

  get publications(): ReadonlyMap<string, Publication> {
    return this.#publications;
  }

  /** The mid of the m-line `publication` arrives on (stats find its werift receiver by it). */
  midOf(publication: Publication): string | undefined {
    return this.#mids.get(publication);
  }

  async publish(request: ClientMessageOf<'publish'>): Promise<ServerMessage> {
    const offer = checkPublishOffer(request.sdp, this.#lastOffer);
    const { sections } = offer;
    const known = new Set([...this.#publications.values()].map((p) => this.#mids.get(p)));
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
      checkTrackLayers(track, section);
    }
    const newTracks = request.tracks.filter((t) => !known.has(t.mid));
    if (this.#publications.size + newTracks.length > LIMITS.maxTracksPerParticipant) {
      throw new SfuError(
        'TOO_MANY_TRACKS',
        `at most ${LIMITS.maxTracksPerParticipant} tracks per participant`,
      );
    }

    if (!this.#pc) await this.#admission.admit('publisher'); // its turn, or SERVICE_BUSY
    this.#assertOpen();
    const pc = this.#pc ?? this.#create();
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: request.sdp });
    } catch (error) {
      this.#sweeper?.sweep();
      throw new SfuError('INVALID_SDP', `the offer was rejected: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.#lastOffer = offer;
    this.#startFeedback(pc);
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
      this.#sweeper?.sweep();
    }
    this.#assertOpen();

    const mapped: { mid: string; trackId: string }[] = [];
    for (const track of request.tracks) {
      const existing = [...this.#publications.values()].find(
        (p) => this.#mids.get(p) === track.mid,
      );
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
        participantSid: this.#sessionId,
        identity: this.#identity,
        codec,
        metrics: this.#metrics,
        logger: this.#logger,
        ...(track.layers ? { layers: track.layers } : {}),
        origin: {
          path: 'client',
          requestKeyframe: (layer) => this.#sendPli(transceiver, publication.layers[layer]?.rid),
        },
      });
      // Dynacast: the publisher sends these rids and may pause the others.
      publication.on('dynacast', (active) =>
        this.#send({ type: 'publication.layers', trackId: publication.trackId, active }),
      );
      this.#mids.set(publication, track.mid);
      this.#publications.set(publication.trackId, publication);
      this.#receive(transceiver, publication);
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

  /**
   * Forwards what the transceiver receives to the publication. A simulcast m-line has one
   * remote track per rid (pitfall 7: werift creates them all at setRemoteDescription, but its
   * `ontrack` fires only for the first; each is in `receiver.trackByRID`): each goes to the
   * publication as the layer of its rid.
   */
  #receive(transceiver: RTCRtpTransceiver, publication: Publication): void {
    const attached = new WeakSet<MediaStreamTrack>();
    const rids = publication.layers.map((l) => l.rid);
    const attach = (remote: MediaStreamTrack) => {
      if (attached.has(remote)) return;
      const layer = rids.indexOf(remote.rid ?? '');
      // A track of no declared layer: a simulcast m-line's rid-less default track (werift
      // keeps one), or a rid the request did not declare (checked before, so none).
      if (layer < 0) return;
      attached.add(remote);
      const off = remote.onReceiveRtp.subscribe((rtp) =>
        publication.forward(rtp, layer),
      ).unSubscribe;
      publication.once('close', off);
    };
    this.#werift.push(
      transceiver.onTrack.subscribe(attach).unSubscribe,
      transceiver.receiver.onPacketLost.subscribe(() =>
        this.#metrics.nack.inc({ direction: 'out' }),
      ).unSubscribe,
    );
    if (publication.kind === 'video' && !fixNackWraparound(transceiver.receiver)) {
      this.#logger.warn('werift internals changed: NACK wraparound fix not applied');
    }
    // werift may already have created the track during setRemoteDescription.
    for (const remote of transceiver.receiver.tracks) attach(remote);
  }

  unpublish(trackId: string): void {
    const publication = this.#publications.get(trackId);
    if (!publication)
      throw new SfuError('TRACK_NOT_FOUND', `no track "${trackId}" published by this participant`);
    this.#publications.delete(trackId);
    publication.close();
    this.safeEmit('unpublished', publication);
  }

  mute(trackId: string, muted: boolean): Publication {
    const publication = this.#publications.get(trackId);
    if (!publication)
      throw new SfuError('TRACK_NOT_FOUND', `no track "${trackId}" published by this participant`);
    publication.setMuted(muted);
    if (!muted) publication.requestKeyframe();
    return publication;
  }

  async trickle(candidate: IceCandidate): Promise<void> {
    if (!this.#pc)
      throw new SfuError(
        'NEGOTIATION_FAILED',
        'no publisher PeerConnection yet: send the offer first',
      );
    await addCandidate(this.#pc, candidate, this.#logger);
  }

  #create(): RTCPeerConnection {
    const pc = new RTCPeerConnection(publisherPeerConfig(this.#config));
    this.#pc = pc;
    this.#sweeper = new TransportSweeper(
      pc,
      this.#logger,
      udpReceiveBufferHook(this.#config.udpReceiveBuffer, this.#logger),
    );
    this.#onPeerConnection(pc);
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
   * Transport-cc feedback that the publisher's send-side estimator grows its estimate from
   * (werift's own is silenced on every receiver, new m-lines included: pitfall 3). Started
   * once an offer negotiates the transport-cc extension (browsers do; the bots do not).
   */
  #startFeedback(pc: RTCPeerConnection): void {
    for (const transceiver of pc.getTransceivers()) {
      if (!silenceWeriftTwcc(transceiver.receiver)) {
        this.#logger.warn('werift internals changed: its transport-cc feedback is not silenced');
      }
    }
    const first = pc.getTransceivers()[0];
    const negotiated = Object.values(pc.extIdUriMap).includes(TRANSPORT_CC_URI);
    if (this.#feedback || !first || !negotiated) return;
    this.#feedback = new TwccFeedback({
      transport: first.receiver.dtlsTransport,
      extensionUris: pc.extIdUriMap,
      senderSsrc: first.receiver.rtcpSsrc,
      onSent: () => this.#metrics.publisherFeedback.inc(),
      onError: (error) => this.#logger.debug({ err: error }, 'transport-cc feedback send failed'),
    });
  }

  /**
   * Pitfall 3: werift never sends REMB. With transport-cc feedback the publisher estimates its
   * uplink itself; the REMB caps that estimate at the configured bitrate (the publisher sends
   * at most the smaller of the two), and is the only limit for a publisher without transport-cc.
   */
  #sendRemb(): void {
    const pc = this.#pc;
    if (pc?.connectionState !== 'connected') return;
    const videos = pc.getTransceivers().filter((t) => t.kind === 'video');
    const ssrcs = videos.flatMap((t) => receivedSsrcs(t));
    const first = videos[0];
    if (!first || ssrcs.length === 0) return;
    first.receiver.dtlsTransport
      .sendRtcp([rembPacket(first.receiver.rtcpSsrc, ssrcs, this.#config.maxPublishBitrate)])
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'REMB send failed'));
  }

  /** A PLI for the layer of `rid` ('' when not simulcast): its track's SSRC, once known. */
  #sendPli(transceiver: RTCRtpTransceiver, rid: string | undefined): void {
    if (rid === undefined) return;
    const ssrc = rid === '' ? transceiver.receiver.tracks[0]?.ssrc : ssrcOfRid(transceiver, rid);
    if (ssrc === undefined) return;
    // An explicit PLI rather than receiver.sendRtcpPLI, which does nothing unless "nack pli"
    // was negotiated (pitfall 4); a browser always accepts PLI for video.
    transceiver.receiver.dtlsTransport
      .sendRtcp([pliPacket(transceiver.receiver.rtcpSsrc, ssrc)])
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'PLI send failed'));
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError(`participant ${this.#sessionId} is closed`);
  }

  /** Closes every publication (and so every subscription to them) and the PeerConnection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#rembTimer);
    this.#feedback?.close();
    for (const off of this.#werift.splice(0)) off();
    for (const p of [...this.#publications.values()]) {
      p.close();
      this.safeEmit('unpublished', p);
    }
    this.#publications.clear();
    this.#pc = undefined;
    await this.#sweeper?.close();
    this.removeAllListeners();
  }
}

/**
 * The SSRC a simulcast layer arrives on. werift never sets a rid track's `ssrc`; it learns the
 * SSRC from the first packet carrying the RID header extension (`trackBySSRC`).
 */
function ssrcOfRid(transceiver: RTCRtpTransceiver, rid: string): number | undefined {
  for (const [ssrc, track] of Object.entries(transceiver.receiver.trackBySSRC)) {
    if (track.rid === rid) return Number(ssrc);
  }
  return undefined;
}

/** Every SSRC a transceiver receives on: its SSRC-signalled tracks and its simulcast layers. */
function receivedSsrcs(transceiver: RTCRtpTransceiver): number[] {
  const ssrcs = new Set<number>();
  for (const track of transceiver.receiver.tracks)
    if (track.ssrc !== undefined) ssrcs.add(track.ssrc);
  for (const ssrc of Object.keys(transceiver.receiver.trackBySSRC)) ssrcs.add(Number(ssrc));
  return [...ssrcs];
}
