/**
 * Paced synthetic media: frames built by a packetizer, wrapped in RTP and handed to a send
 * function (a werift sender in the bot). One timer per source; timestamps follow the wall clock
 * so that a receiver's jitter measures the network and the SFU, not this timer.
 */
import type { TrackKind } from '@geosfu/common/protocol';
import { RtpHeader, RtpPacket } from 'werift';
import {
  buildAudioPayload,
  H264Packetizer,
  type Packetizer,
  type VideoCodecName,
  Vp8Packetizer,
} from './packetizer.js';

/** Milliseconds on a clock shared by every process of a machine (and close to epoch time). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface SentStreamStats {
  kind: TrackKind;
  codec: string;
  packets: number;
  /** Header + payload bytes handed to the sender (before SRTP). */
  bytes: number;
  frames: number;
  keyframes: number;
  plisReceived: number;
  /** A simulcast video: each layer's own counts, lowest first (the fields above sum them). */
  layers?: SentLayerStats[];
}

/** One simulcast layer of a sent video. */
export interface SentLayerStats extends Omit<SentStreamStats, 'layers'> {
  rid: string;
  ssrc: number;
  /** False while paused (dynacast told the bot nobody needs it). */
  sending: boolean;
}

export interface VideoSourceOptions {
  codec?: VideoCodecName;
  /** For H264: the negotiated profile-level-id, written into the SPS. */
  h264ProfileLevelId?: string;
  /** Target bitrate in bits per second (default 1 500 000). */
  bitrate?: number;
  fps?: number;
  /** Periodic key frame interval (default 10 000 ms); 0 disables periodic key frames. */
  keyframeIntervalMs?: number;
  /** Key frames are this many times larger than delta frames (default 5). */
  keyframeSizeFactor?: number;
  maxPayload?: number;
  /** VP8: the size a keyframe announces (default 640x360). */
  width?: number;
  height?: number;
  /** VP8: write a TL0PICIDX in each descriptor, as a simulcast layer does (default false). */
  tl0PicIdx?: boolean;
}

export interface AudioSourceOptions {
  /** Payload bytes per 20 ms packet (default 160). */
  payloadSize?: number;
}

export interface SourceCommon {
  /** First RTP sequence number; random below 0x8000 by default (see `randomInitialSequence`). */
  initialSequenceNumber?: number;
  /** Called for each packet; the packet must not be kept (its payload is shared history). */
  send: (packet: RtpPacket) => void;
  /** When false (transport not connected) frames are skipped, not counted. */
  canSend?: () => boolean;
  /** Errors thrown by `send` (never expected) go here. */
  onError?: (error: unknown) => void;
}

/**
 * Random in [0, 0x8000). RFC 3550 wants a random start; the lower half keeps the first ~32 000
 * packets (minutes of video) away from the 16-bit wrap, because werift's NACK generator stops
 * detecting losses for a whole cycle when a loss straddles the wrap (it compares raw sequence
 * numbers with `>`; measured at 10% loss: 2 of 8 runs across the wrap lost 27-30 packets for
 * good, against 0-2 otherwise). A test of wraparound sets `initialSequenceNumber` explicitly.
 */
export function randomInitialSequence(): number {
  return Math.floor(Math.random() * 0x8000);
}

abstract class SyntheticSource {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #startedAt = 0;
  #tick = 0;
  #sequenceNumber: number;
  readonly #initialTimestamp = Math.floor(Math.random() * 0x1_0000_0000);
  /** RTP time 0 (plus the random offset) in wall-clock ms; fixed so a restart stays monotonic. */
  readonly #clockOrigin = nowMs();
  protected frames = 0;
  protected packets = 0;
  protected bytes = 0;
  protected keyframes = 0;
  protected plisReceived = 0;
  #running = false;

  constructor(
    readonly kind: TrackKind,
    readonly codec: string,
    protected readonly clockRate: number,
    protected readonly intervalMs: number,
    protected readonly common: SourceCommon,
  ) {
    this.#sequenceNumber = (common.initialSequenceNumber ?? randomInitialSequence()) & 0xffff;
  }

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#startedAt = nowMs();
    this.#tick = 0;
    this.#onTimer();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Called when the receiver asks for a key frame (PLI). */
  requestKeyframe(): void {
    this.plisReceived++;
  }

  stats(): SentStreamStats {
    return {
      kind: this.kind,
      codec: this.codec,
      packets: this.packets,
      bytes: this.bytes,
      frames: this.frames,
      keyframes: this.keyframes,
      plisReceived: this.plisReceived,
    };
  }

  /** Builds the payloads of the next frame; the last one gets the marker bit. */
  protected abstract buildFrame(sendTimeMs: number, frame: number): Buffer[];

  protected abstract markerOnLast(): boolean;

  #onTimer(): void {
    if (!this.#running) return;
    const now = nowMs();
    if (this.common.canSend?.() ?? true) {
      try {
        this.#sendFrame(now);
      } catch (error) {
        this.common.onError?.(error);
      }
    }
    // Drift-free pacing: aim at start + n * interval. After a stall (GC, a busy event loop) skip
    // the missed frames instead of sending a burst of them.
    this.#tick++;
    const elapsed = nowMs() - this.#startedAt;
    const behind = Math.floor(elapsed / this.intervalMs);
    if (behind > this.#tick) this.#tick = behind;
    const delay = Math.max(0, this.#startedAt + this.#tick * this.intervalMs - nowMs());
    this.#timer = setTimeout(() => this.#onTimer(), delay);
  }

  #sendFrame(now: number): void {
    const elapsedTicks = Math.round(((now - this.#clockOrigin) * this.clockRate) / 1000);
    const timestamp = (this.#initialTimestamp + elapsedTicks) >>> 0;
    const payloads = this.buildFrame(now, this.frames);
    const marker = this.markerOnLast();
    for (let i = 0; i < payloads.length; i++) {
      const payload = payloads[i] as Buffer;
      const header = new RtpHeader({
        // The sender overwrites payload type and SSRC with the negotiated ones.
        payloadType: 0,
        sequenceNumber: this.#sequenceNumber,
        timestamp,
        marker: marker ? i === payloads.length - 1 : this.frames === 0,
      });
      this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
      this.packets++;
      this.bytes += 12 + payload.length;
      this.common.send(new RtpPacket(header, payload));
    }
    this.frames++;
  }
}

export class SyntheticVideoSource extends SyntheticSource {
  readonly #packetizer: Packetizer;
  readonly #deltaSize: number;
  readonly #keySize: number;
  readonly #keyframeIntervalMs: number;
  #keyframePending = true;
  #lastKeyframeAt = 0;

  constructor(options: VideoSourceOptions, common: SourceCommon) {
    const codec = options.codec ?? 'vp8';
    const fps = options.fps ?? 30;
    const bitrate = options.bitrate ?? 1_500_000;
    if (!(fps > 0 && fps <= 120)) throw new RangeError(`fps must be in (0, 120], got ${fps}`);
    if (!(bitrate > 0)) throw new RangeError(`bitrate must be > 0, got ${bitrate}`);
    super('video', codec, 90_000, 1000 / fps, common);
    this.#packetizer =
      codec === 'h264'
        ? new H264Packetizer({
            maxPayload: options.maxPayload,
            profileLevelId: options.h264ProfileLevelId,
          })
        : new Vp8Packetizer({
            maxPayload: options.maxPayload,
            tl0PicIdx: options.tl0PicIdx,
            width: options.width,
            height: options.height,
          });
    this.#deltaSize = Math.max(1, Math.round(bitrate / 8 / fps));
    this.#keySize = Math.round(this.#deltaSize * (options.keyframeSizeFactor ?? 5));
    this.#keyframeIntervalMs = options.keyframeIntervalMs ?? 10_000;
  }

  override requestKeyframe(): void {
    super.requestKeyframe();
    this.#keyframePending = true;
  }

  /** The next frame is a keyframe, without a PLI (an encoder resuming a paused layer). */
  keyframeNext(): void {
    this.#keyframePending = true;
  }

  protected buildFrame(sendTimeMs: number, frame: number): Buffer[] {
    const periodic =
      this.#keyframeIntervalMs > 0 && sendTimeMs - this.#lastKeyframeAt >= this.#keyframeIntervalMs;
    const keyframe = this.#keyframePending || periodic;
    if (keyframe) {
      this.#keyframePending = false;
      this.#lastKeyframeAt = sendTimeMs;
      this.keyframes++;
    }
    return this.#packetizer.packetize(
      keyframe ? this.#keySize : this.#deltaSize,
      keyframe,
      sendTimeMs,
      frame,
    );
  }

  protected markerOnLast(): boolean {
    return true;
  }
}

/** 50 packets/s of 20 ms (960 ticks at 48 kHz). */
export class SyntheticAudioSource extends SyntheticSource {
  readonly #payloadSize: number;

  constructor(options: AudioSourceOptions, common: SourceCommon) {
    super('audio', 'opus', 48_000, 20, common);
    this.#payloadSize = options.payloadSize ?? 160;
  }

  protected buildFrame(sendTimeMs: number, frame: number): Buffer[] {
    return [buildAudioPayload(this.#payloadSize, sendTimeMs, frame)];
  }

  /** Audio sets the marker only on the first packet of a talkspurt (RFC 3551 section 4.1). */
  protected markerOnLast(): boolean {
    return false;
  }
}
