/**
 * The publishing half of a bot: one werift PeerConnection that offers sendonly transceivers
 * and feeds them from synthetic sources once the transport is up. Signalling is injected (the
 * `exchange` callback), so the same class runs against the SFU and against a bare werift peer
 * in the loopback test.
 */
import type { Logger } from '@geosfu/common';
import type { IceCandidate, SimulcastLayer, TrackKind } from '@geosfu/common/protocol';
import { RTCPeerConnection, type RTCRtpTransceiver, type RtpPacket, useOPUS } from 'werift';
import type { VideoCodecName } from './packetizer.js';
import {
  localSdp,
  type PeerOptions,
  peerConfig,
  publisherVideoCodecs,
  waitForConnected,
} from './peer.js';
import { BOT_SIMULCAST_LAYERS, SimulcastVideoSource, simulcastOffer } from './simulcast.js';
import {
  type SentStreamStats,
  SyntheticAudioSource,
  SyntheticVideoSource,
  type VideoSourceOptions,
} from './source.js';

export interface PublishOptions extends Omit<VideoSourceOptions, 'codec' | 'h264ProfileLevelId'> {
  video?: boolean;
  audio?: boolean;
  videoCodec?: VideoCodecName;
  /** For H264 (default werift's 42e01f; Chrome offers 42001f). */
  h264ProfileLevelId?: string;
  /** Audio payload bytes per packet (default 160). */
  audioPayloadSize?: number;
  /** First RTP sequence number of each stream (default random below 0x8000). */
  initialSequenceNumber?: number;
  /**
   * Send the video as three simulcast layers (BOT_SIMULCAST_LAYERS, VP8 only; `bitrate` is
   * then each layer's own cap) and honour dynacast's `publication.layers`.
   */
  simulcast?: boolean;
}

export interface OfferedTrack {
  mid: string;
  kind: TrackKind;
  source: 'synthetic';
  layers?: SimulcastLayer[];
}

/** What a published track's media comes from. */
interface BotSource {
  start(): void;
  stop(): void;
  stats(): SentStreamStats;
}

/** Sends the offer to the other side and returns its answer and the track ids it assigned. */
export type PublishExchange = (
  sdp: string,
  tracks: OfferedTrack[],
) => Promise<{ sdp: string; tracks: { mid: string; trackId: string }[] }>;

interface Published {
  kind: TrackKind;
  transceiver: RTCRtpTransceiver;
  source: BotSource;
  trackId: string | undefined;
}

export class BotPublisher {
  readonly pc: RTCPeerConnection;
  readonly #tracks: Published[] = [];
  readonly #log: Logger;
  readonly #onPli: ((kind: TrackKind) => void) | undefined;
  #simulcast: SimulcastVideoSource | undefined;
  #closed = false;

  constructor(
    readonly options: PublishOptions,
    peer: PeerOptions,
    logger: Logger,
    onPli?: (kind: TrackKind) => void,
  ) {
    this.#log = logger;
    this.#onPli = onPli;
    const videoCodec = options.videoCodec ?? 'vp8';
    this.pc = new RTCPeerConnection(
      peerConfig(peer, {
        video: publisherVideoCodecs(videoCodec, options.h264ProfileLevelId),
        audio: [useOPUS()],
      }),
    );
    const common = (transceiver: RTCRtpTransceiver) => ({
      initialSequenceNumber: options.initialSequenceNumber,
      send: (packet: RtpPacket) => {
        transceiver.sender.sendRtp(packet).catch((error: unknown) => {
          this.#log.warn({ err: error }, 'sendRtp failed');
        });
      },
      // werift drops RTP silently until DTLS is up; skipping keeps the sent counts true.
      canSend: () => transceiver.sender.dtlsTransport?.state === 'connected',
      onError: (error: unknown) => this.#log.error({ err: error }, 'synthetic source failed'),
    });
    if ((options.video ?? true) && options.simulcast) {
      if (videoCodec !== 'vp8') throw new RangeError('simulcast is VP8 only');
      const transceiver = this.pc.addTransceiver('video', { direction: 'sendonly' });
      this.#simulcast = new SimulcastVideoSource(
        transceiver,
        BOT_SIMULCAST_LAYERS,
        {
          fps: options.fps,
          keyframeIntervalMs: options.keyframeIntervalMs,
          keyframeSizeFactor: options.keyframeSizeFactor,
          initialSequenceNumber: options.initialSequenceNumber,
        },
        this.#log,
        () => this.#onPli?.('video'),
      );
      this.#tracks.push({
        kind: 'video',
        transceiver,
        source: this.#simulcast,
        trackId: undefined,
      });
    } else if (options.video ?? true) {
      // Pitfall 4: only a sendonly transceiver's sender sees the PLIs.
      const transceiver = this.pc.addTransceiver('video', { direction: 'sendonly' });
      const source = new SyntheticVideoSource(
        { ...options, codec: videoCodec, h264ProfileLevelId: options.h264ProfileLevelId },
        common(transceiver),
      );
      transceiver.sender.onPictureLossIndication.subscribe(() => {
        source.requestKeyframe();
        this.#onPli?.('video');
      });
      this.#tracks.push({ kind: 'video', transceiver, source, trackId: undefined });
    }
    if (options.audio ?? true) {
      const transceiver = this.pc.addTransceiver('audio', { direction: 'sendonly' });
      const source = new SyntheticAudioSource(
        { payloadSize: options.audioPayloadSize },
        common(transceiver),
      );
      this.#tracks.push({ kind: 'audio', transceiver, source, trackId: undefined });
    }
    this.pc.connectionStateChange.subscribe((state) => {
      this.#log.debug({ state }, 'publisher connection state');
    });
  }

  get kinds(): TrackKind[] {
    return this.#tracks.map((t) => t.kind);
  }

  /** Offer, exchange, answer. Call again after a change to renegotiate. */
  async negotiate(exchange: PublishExchange): Promise<void> {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    let sdp = localSdp(this.pc);
    const tracks: OfferedTrack[] = this.#tracks.map((t) => {
      if (t.transceiver.mid === null) throw new Error(`no mid for the ${t.kind} transceiver`);
      const track: OfferedTrack = { mid: t.transceiver.mid, kind: t.kind, source: 'synthetic' };
      if (t.source === this.#simulcast && this.#simulcast) {
        sdp = simulcastOffer(sdp, t.transceiver.mid, this.#simulcast.rids);
        track.layers = [...BOT_SIMULCAST_LAYERS];
      }
      return track;
    });
    const answer = await exchange(sdp, tracks);
    if (this.#closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    for (const { mid, trackId } of answer.tracks) {
      const t = this.#tracks.find((p) => p.transceiver.mid === mid);
      if (t) t.trackId = trackId;
    }
  }

  /** Waits for the transport, then starts every source. */
  async start(timeoutMs = 10_000): Promise<void> {
    await waitForConnected(this.pc, timeoutMs);
    if (this.#closed) return;
    for (const t of this.#tracks) t.source.start();
  }

  trackId(kind: TrackKind): string | undefined {
    return this.#tracks.find((t) => t.kind === kind)?.trackId;
  }

  /** Stops the source of this kind (the m-line stays; nothing is sent on it any more). */
  stopSource(kind: TrackKind): boolean {
    const t = this.#tracks.find((p) => p.kind === kind);
    if (!t) return false;
    t.source.stop();
    return true;
  }

  /** Dynacast: the rids of the simulcast video to send; the others pause. */
  setActiveLayers(rids: readonly string[]): void {
    this.#simulcast?.setActive(rids);
  }

  async addRemoteCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed) return;
    await this.pc.addIceCandidate(candidate);
  }

  stats(): SentStreamStats[] {
    return this.#tracks.map((t) => t.source.stats());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tracks) t.source.stop();
    await this.pc.close();
  }
}
