/**
 * A bot's simulcast video: three synthetic VP8 layers, each an RTP stream of its own SSRC on
 * the one video m-line, each packet carrying the RID header extension, as Chrome sends them.
 *
 * werift cannot send simulcast (its sender writes one SSRC and at most one rid), so the bot
 * does what Chrome's encoder and RTP stack do by hand: it adds the rid lines to its offer
 * (`simulcastOffer`), writes each layer's packets itself and hands them to the transport
 * (`dtlsTransport.sendRtp`, which only encrypts), and reads the PLIs for the layers' SSRCs
 * off the transport's RTCP (werift's router knows only the sender's own SSRC).
 */
import { randomInt } from 'node:crypto';
import type { Logger } from '@geosfu/common';
import type { SimulcastLayer } from '@geosfu/common/protocol';
import {
  PictureLossIndication,
  type RTCRtpTransceiver,
  RtcpPayloadSpecificFeedback,
  type RtpPacket,
} from 'werift';
import { type SentLayerStats, type SentStreamStats, SyntheticVideoSource } from './source.js';

/** The layers `sfu-bot --simulcast` sends, lowest first (rids as the demo page's). */
export const BOT_SIMULCAST_LAYERS: readonly SimulcastLayer[] = Object.freeze([
  { rid: 'q', width: 320, height: 180, maxBitrate: 150_000 },
  { rid: 'h', width: 640, height: 360, maxBitrate: 500_000 },
  { rid: 'f', width: 1280, height: 720, maxBitrate: 1_500_000 },
]);

export const RTP_STREAM_ID_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
/** The extmap id the bot offers for the rid extension (its offer has no other extension). */
export const RTP_STREAM_ID_EXTMAP = 10;
/** RFC 8285 one-byte header extensions. */
const ONE_BYTE_PROFILE = 0xbede;

/**
 * The offer with the m-line `mid` turned into a simulcast one: its rids (`a=rid:<rid> send`,
 * `a=simulcast:send`), the rid extension, and no `a=ssrc` lines (the layers' SSRCs are
 * announced by the rids in the packets, as Chrome does).
 */
export function simulcastOffer(sdp: string, mid: string, rids: readonly string[]): string {
  const lines = sdp.split(/\r?\n/);
  const out: string[] = [];
  let inSection = false;
  let found = false;
  for (const line of lines) {
    if (line.startsWith('m=')) inSection = false;
    if (inSection && (line.startsWith('a=ssrc:') || line.startsWith('a=ssrc-group:'))) continue;
    out.push(line);
    if (line === `a=mid:${mid}`) {
      inSection = true;
      found = true;
      out.push(`a=extmap:${RTP_STREAM_ID_EXTMAP} ${RTP_STREAM_ID_URI}`);
      for (const rid of rids) out.push(`a=rid:${rid} send`);
      out.push(`a=simulcast:send ${rids.join(';')}`);
    }
  }
  if (!found) throw new Error(`the offer has no m-line with mid "${mid}"`);
  return out.join('\r\n');
}

interface Layer {
  readonly spec: SimulcastLayer;
  readonly ssrc: number;
  readonly source: SyntheticVideoSource;
  readonly ridExtension: { id: number; payload: Buffer };
  sending: boolean;
}

export interface SimulcastSourceOptions {
  fps?: number;
  keyframeIntervalMs?: number;
  keyframeSizeFactor?: number;
  initialSequenceNumber?: number;
}

export class SimulcastVideoSource {
  readonly #transceiver: RTCRtpTransceiver;
  readonly #layers: Layer[];
  readonly #log: Logger;
  readonly #onPli: () => void;
  #offRtcp: (() => void) | undefined;
  #running = false;

  constructor(
    transceiver: RTCRtpTransceiver,
    layers: readonly SimulcastLayer[],
    options: SimulcastSourceOptions,
    logger: Logger,
    onPli: () => void,
  ) {
    this.#transceiver = transceiver;
    this.#log = logger;
    this.#onPli = onPli;
    const ssrcs = new Set<number>([transceiver.sender.ssrc]);
    this.#layers = layers.map((spec) => {
      let ssrc = randomInt(1, 0xffffffff);
      while (ssrcs.has(ssrc)) ssrc = randomInt(1, 0xffffffff);
      ssrcs.add(ssrc);
      const layer: Layer = {
        spec,
        ssrc,
        sending: true,
        ridExtension: { id: RTP_STREAM_ID_EXTMAP, payload: Buffer.from(spec.rid, 'ascii') },
        source: new SyntheticVideoSource(
          {
            codec: 'vp8',
            bitrate: spec.maxBitrate,
            fps: options.fps,
            keyframeIntervalMs: options.keyframeIntervalMs,
            keyframeSizeFactor: options.keyframeSizeFactor,
            width: spec.width,
            height: spec.height,
            tl0PicIdx: true,
          },
          {
            initialSequenceNumber: options.initialSequenceNumber,
            send: (packet) => this.#send(layer, packet),
            canSend: () => this.#canSend(),
            onError: (error) => this.#log.error({ err: error }, 'simulcast layer failed'),
          },
        ),
      };
      return layer;
    });
  }

  get rids(): string[] {
    return this.#layers.map((l) => l.spec.rid);
  }

  /** Starts every layer that is not paused, and listens for PLIs. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const dtls = this.#transceiver.sender.dtlsTransport;
    this.#offRtcp = dtls.onRtcp.subscribe((packet) => {
      if (!(packet instanceof RtcpPayloadSpecificFeedback)) return;
      const feedback = packet.feedback;
      if (!(feedback instanceof PictureLossIndication)) return;
      const layer = this.#layers.find((l) => l.ssrc === feedback.mediaSsrc);
      if (!layer) return;
      layer.source.requestKeyframe();
      this.#onPli();
    }).unSubscribe;
    for (const layer of this.#layers) if (layer.sending) layer.source.start();
  }

  stop(): void {
    this.#running = false;
    this.#offRtcp?.();
    this.#offRtcp = undefined;
    for (const layer of this.#layers) layer.source.stop();
  }

  /** PLI without a layer: every layer's next frame is a keyframe. */
  requestKeyframe(): void {
    for (const layer of this.#layers) layer.source.requestKeyframe();
  }

  /**
   * Dynacast: send these rids, pause the others (`encodings[i].active`). A resumed layer
   * starts with a keyframe, as an encoder does.
   */
  setActive(rids: readonly string[]): void {
    for (const layer of this.#layers) {
      const sending = rids.includes(layer.spec.rid);
      if (sending === layer.sending) continue;
      layer.sending = sending;
      this.#log.info({ rid: layer.spec.rid, sending }, 'simulcast layer');
      if (!this.#running) continue;
      if (sending) {
        layer.source.keyframeNext();
        layer.source.start();
      } else {
        layer.source.stop();
      }
    }
  }

  stats(): SentStreamStats {
    const layers: SentLayerStats[] = this.#layers.map((l) => {
      const { layers: _none, ...s } = l.source.stats();
      return { ...s, rid: l.spec.rid, ssrc: l.ssrc, sending: l.sending };
    });
    const sum = (key: 'packets' | 'bytes' | 'frames' | 'keyframes' | 'plisReceived') =>
      layers.reduce((total, l) => total + l[key], 0);
    return {
      kind: 'video',
      codec: 'vp8',
      packets: sum('packets'),
      bytes: sum('bytes'),
      frames: sum('frames'),
      keyframes: sum('keyframes'),
      plisReceived: sum('plisReceived'),
      layers,
    };
  }

  #canSend(): boolean {
    const sender = this.#transceiver.sender;
    return sender.codec !== undefined && sender.dtlsTransport?.state === 'connected';
  }

  /** One packet of a layer: its SSRC, the negotiated payload type and its rid, then SRTP. */
  #send(layer: Layer, packet: RtpPacket): void {
    const sender = this.#transceiver.sender;
    const codec = sender.codec;
    if (!codec) return;
    const header = packet.header;
    header.ssrc = layer.ssrc;
    header.payloadType = codec.payloadType;
    header.extension = true;
    header.extensionProfile = ONE_BYTE_PROFILE;
    header.extensions = [layer.ridExtension];
    sender.dtlsTransport.sendRtp(packet.payload, header).catch((error: unknown) => {
      this.#log.warn({ err: error }, 'sendRtp failed');
    });
  }
}
