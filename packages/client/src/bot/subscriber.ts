/**
 * The receiving half of a bot: one werift PeerConnection that answers the server's offers and
 * measures every stream it receives. Streams are keyed by participant identity and kind, looked
 * up from the offer's mid -> track table at packet time, so a renegotiation that moves a track
 * to another m-line (or a new SSRC) keeps adding to the same stream.
 */
import type { Logger } from '@geosfu/common';
import type { IceCandidate, SubscribedTrack, TrackKind } from '@geosfu/common/protocol';
import {
  type MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpTransceiver,
  type RtpPacket,
  useOPUS,
} from 'werift';
import { localSdp, type PeerOptions, peerConfig, subscriberVideoCodecs } from './peer.js';
import { RtpLog } from './RtpLog.js';
import {
  PACKET,
  ReceivedStream,
  type ReceivedStreamInterval,
  type ReceivedStreamStats,
} from './receivedStream.js';
import { nowMs } from './source.js';

export interface SubscriberListener {
  firstPacket?(identity: string, kind: TrackKind, atMs: number): void;
  keyframe?(identity: string, kind: TrackKind, atMs: number, first: boolean): void;
  /** After every counted packet (keep it cheap). */
  packet?(identity: string, kind: TrackKind): void;
}

/** One received stream's `takeInterval`, with whose stream it is. */
export interface ReceivedIntervalStats extends ReceivedStreamInterval {
  participant: string;
  kind: TrackKind;
}

export function streamKey(identity: string, kind: TrackKind): string {
  return `${kind}\u0000${identity}`;
}

export class BotSubscriber {
  readonly pc: RTCPeerConnection;
  readonly #log: Logger;
  readonly #listener: SubscriberListener;
  readonly #midInfo = new Map<string, SubscribedTrack>();
  readonly #streams = new Map<string, ReceivedStream>();
  readonly #attached = new WeakSet<MediaStreamTrack>();
  readonly #unsubscribe: (() => void)[] = [];
  /** Tracks whose every packet is logged (`recordRtp`), by trackId. */
  readonly #logs = new Map<string, RtpLog>();
  /** Bumped on every negotiation: payload type -> codec caches are rebuilt after it. */
  #generation = 0;
  #closed = false;

  constructor(peer: PeerOptions, logger: Logger, listener: SubscriberListener = {}) {
    this.#log = logger;
    this.#listener = listener;
    this.pc = new RTCPeerConnection(
      peerConfig(peer, { video: subscriberVideoCodecs(), audio: [useOPUS()] }),
    );
    // onTrack fires synchronously inside setRemoteDescription, before any RTP of the new
    // track can be routed, so subscribing here loses no packet.
    const { unSubscribe } = this.pc.onTrack.subscribe((track) => this.#attachTrack(track));
    this.#unsubscribe.push(unSubscribe);
    this.pc.connectionStateChange.subscribe((state) => {
      this.#log.debug({ state }, 'subscriber connection state');
    });
  }

  /** Applies a server offer (the remote description); `createAnswer` answers it. */
  async applyOffer(sdp: string, tracks: readonly SubscribedTrack[]): Promise<void> {
    this.#generation++;
    this.#midInfo.clear();
    for (const t of tracks) this.#midInfo.set(t.mid, t);
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    // onTrack fires once per transceiver; an SSRC added later on the same m-line only adds a
    // track to the receiver, so look for those too.
    for (const t of this.pc.getTransceivers()) {
      for (const track of t.receiver.tracks) this.#attachTrack(track, t);
    }
  }

  /** Creates and applies the answer to the offer just applied; returns the answer SDP. */
  async createAnswer(): Promise<string> {
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    return localSdp(this.pc);
  }

  async addRemoteCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed) return;
    await this.pc.addIceCandidate(candidate);
  }

  /** The m-line table of the last offer. */
  get tracks(): SubscribedTrack[] {
    return [...this.#midInfo.values()];
  }

  stream(identity: string, kind: TrackKind): ReceivedStream | undefined {
    return this.#streams.get(streamKey(identity, kind));
  }

  stats(): ReceivedStreamStats[] {
    return [...this.#streams.values()].map((s) => s.stats());
  }

  /** Ends the current interval of every stream at `atMs` (see ReceivedStream.takeInterval). */
  intervalStats(atMs: number = nowMs()): ReceivedIntervalStats[] {
    return [...this.#streams.values()].map((s) => ({
      participant: s.participant,
      kind: s.kind,
      ...s.takeInterval(atMs),
    }));
  }

  /**
   * Starts logging every packet of the subscribed track `trackId` (from now on; the same log
   * when called again), for tests that check what arrived packet by packet.
   */
  recordRtp(trackId: string): RtpLog {
    let log = this.#logs.get(trackId);
    if (!log) {
      log = new RtpLog();
      this.#logs.set(trackId, log);
    }
    return log;
  }

  /** Sends a PLI for this participant's stream (werift never sends one by itself). */
  async requestKeyframe(identity: string, kind: TrackKind = 'video'): Promise<boolean> {
    for (const t of this.pc.getTransceivers()) {
      const info = t.mid === null ? undefined : this.#midInfo.get(t.mid);
      if (!info || info.identity !== identity || info.kind !== kind) continue;
      const ssrc = t.receiver.track.ssrc;
      if (ssrc === undefined) return false;
      await t.receiver.sendRtcpPLI(ssrc);
      return true;
    }
    return false;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    await this.pc.close();
  }

  #attachTrack(track: MediaStreamTrack, known?: RTCRtpTransceiver): void {
    if (this.#attached.has(track) || this.#closed) return;
    const transceiver =
      known ??
      this.pc
        .getTransceivers()
        .find((t) => t.receiver.tracks.includes(track) || t.receiver.track === track);
    if (!transceiver) {
      this.#log.warn({ kind: track.kind }, 'track without a transceiver; not measured');
      return;
    }
    this.#attached.add(track);
    let cacheGeneration = -1;
    const codecByPt = new Map<number, string>();
    const { unSubscribe } = track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      const arrivalMs = nowMs();
      if (cacheGeneration !== this.#generation) {
        codecByPt.clear();
        cacheGeneration = this.#generation;
      }
      const pt = rtp.header.payloadType;
      let codec = codecByPt.get(pt);
      if (codec === undefined) {
        codec = transceiver.codecs.find((c) => c.payloadType === pt)?.name.toLowerCase() ?? '';
        codecByPt.set(pt, codec);
      }
      this.#onRtp(transceiver, track, rtp, codec, arrivalMs);
    });
    this.#unsubscribe.push(unSubscribe);
  }

  #onRtp(
    transceiver: RTCRtpTransceiver,
    track: MediaStreamTrack,
    rtp: RtpPacket,
    codec: string,
    arrivalMs: number,
  ): void {
    const mid = transceiver.mid ?? '?';
    const info = this.#midInfo.get(mid);
    const identity = info?.identity ?? `unknown:mid=${mid}`;
    const kind: TrackKind = info?.kind ?? (track.kind === 'audio' ? 'audio' : 'video');
    const key = streamKey(identity, kind);
    let stream = this.#streams.get(key);
    if (!stream) {
      const clockRate = track.codec?.clockRate ?? (kind === 'video' ? 90_000 : 48_000);
      stream = new ReceivedStream(identity, kind, clockRate);
      this.#streams.set(key, stream);
    }
    const { header, payload } = rtp;
    if (this.#logs.size > 0 && info)
      this.#logs.get(info.trackId)?.push(header.sequenceNumber, header.timestamp, payload, codec);
    const outcome = stream.onPacket(
      {
        ssrc: header.ssrc,
        sequenceNumber: header.sequenceNumber,
        timestamp: header.timestamp,
        headerSize: header.serializeSize,
        payload,
      },
      codec,
      arrivalMs,
    );
    // A listener that throws must not break werift's receive loop.
    try {
      if (outcome === 0) return;
      if (outcome & PACKET.firstPacket) this.#listener.firstPacket?.(identity, kind, arrivalMs);
      if (outcome & PACKET.keyframe) {
        this.#listener.keyframe?.(
          identity,
          kind,
          arrivalMs,
          (outcome & PACKET.firstKeyframe) !== 0,
        );
      }
      this.#listener.packet?.(identity, kind);
    } catch (error) {
      this.#log.error({ err: error }, 'subscriber listener threw');
    }
  }
}
