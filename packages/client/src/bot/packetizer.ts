/**
 * Synthetic media payloads that look like real codecs on the wire, so that an SFU's keyframe
 * detection and a receiving bot's keyframe counting work exactly as with a browser's stream.
 *
 * Every payload ends with a 16-byte probe trailer (magic, send time, frame number) from which
 * a receiving bot computes one-way latency. It is a trailer rather than a header because the
 * codec prefix differs per codec and per packet (VP8 descriptor plus a frame header on the
 * first packet only; H264 single NAL, STAP-A or FU-A): the end of the payload is the one place
 * a receiver can find without parsing any of them.
 */
import { isH264Keyframe, isVp8Keyframe } from '@geosfu/media';

/** 'GSFB' (geosfu bot). */
export const PROBE_MAGIC = 0x47534642;
export const PROBE_SIZE = 16;

/** Payload bytes per RTP packet, close to what Chrome sends (it keeps packets under ~1200). */
export const DEFAULT_MAX_PAYLOAD = 1150;

export interface Probe {
  /** Milliseconds on the `performance.timeOrigin + performance.now()` clock of the sender. */
  sendTimeMs: number;
  /** Frame number within the sending stream. */
  frame: number;
}

/** Writes the probe trailer into the last PROBE_SIZE bytes of `payload`. */
export function writeProbe(payload: Buffer, sendTimeMs: number, frame: number): void {
  const at = payload.length - PROBE_SIZE;
  payload.writeUInt32BE(PROBE_MAGIC, at);
  payload.writeDoubleBE(sendTimeMs, at + 4);
  payload.writeUInt32BE(frame >>> 0, at + 12);
}

/** Reads the probe trailer, or undefined when the payload carries none (e.g. a browser's). */
export function readProbe(payload: Buffer): Probe | undefined {
  if (payload.length < PROBE_SIZE) return undefined;
  const at = payload.length - PROBE_SIZE;
  if (payload.readUInt32BE(at) !== PROBE_MAGIC) return undefined;
  const sendTimeMs = payload.readDoubleBE(at + 4);
  if (!Number.isFinite(sendTimeMs)) return undefined;
  return { sendTimeMs, frame: payload.readUInt32BE(at + 12) };
}

/** Sizes of the chunks a frame of `size` bytes is split into, none above `maxChunk`. */
export function splitSizes(size: number, maxChunk: number): number[] {
  if (maxChunk < 1) throw new RangeError(`maxChunk must be >= 1, got ${maxChunk}`);
  const sizes: number[] = [];
  let left = Math.max(0, Math.floor(size));
  // A frame always produces at least one packet, even an empty one.
  do {
    const n = Math.min(left, maxChunk);
    sizes.push(n);
    left -= n;
  } while (left > 0);
  return sizes;
}

/** Allocates one buffer for a whole frame and returns one view per packet (sizes given). */
function allocateFrame(packetSizes: readonly number[]): Buffer[] {
  // One allocation per frame, zero-filled so that no stale heap bytes go on the wire. The
  // views must never be rewritten after sending: werift's sender keeps the payload Buffer (not
  // a copy) in its NACK history and retransmits it from there.
  const total = packetSizes.reduce((a, b) => a + b, 0);
  const frame = Buffer.alloc(total);
  const views: Buffer[] = [];
  let offset = 0;
  for (const size of packetSizes) {
    views.push(frame.subarray(offset, offset + size));
    offset += size;
  }
  return views;
}

export interface Packetizer {
  /**
   * Builds the payloads of one frame of `size` codec bytes. The last payload is the one that
   * takes the RTP marker bit.
   */
  packetize(size: number, keyframe: boolean, sendTimeMs: number, frame: number): Buffer[];
}

// ---------------------------------------------------------------------------------------
// VP8 (RFC 7741)
// ---------------------------------------------------------------------------------------

/**
 * Descriptor as Chrome sends it: X=1, I=1 with a 15-bit PictureID (M=1), and with simulcast
 * L=1 and a TL0PICIDX (Chrome writes one per layer; every frame here is in temporal layer 0,
 * so it counts frames).
 */
const VP8_DESCRIPTOR_SIZE = 4;
const VP8_KEYFRAME_HEADER_SIZE = 10;
const VP8_INTERFRAME_HEADER_SIZE = 3;

export interface Vp8PacketizerOptions {
  maxPayload?: number;
  initialPictureId?: number;
  /** Write a TL0PICIDX (the L bit), as a simulcast layer carries (default false). */
  tl0PicIdx?: boolean;
  /** The size a keyframe announces (default 640x360). */
  width?: number;
  height?: number;
}

export class Vp8Packetizer implements Packetizer {
  #pictureId: number;
  #tl0PicIdx: number;
  readonly #withTl0: boolean;
  readonly #descriptorSize: number;
  readonly #maxPayload: number;
  readonly #width: number;
  readonly #height: number;

  constructor(options: Vp8PacketizerOptions = {}) {
    this.#maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.#pictureId = (options.initialPictureId ?? Math.floor(Math.random() * 0x8000)) & 0x7fff;
    this.#tl0PicIdx = Math.floor(Math.random() * 0x100);
    this.#withTl0 = options.tl0PicIdx ?? false;
    this.#descriptorSize = VP8_DESCRIPTOR_SIZE + (this.#withTl0 ? 1 : 0);
    this.#width = options.width ?? 640;
    this.#height = options.height ?? 360;
    if (this.#maxPayload <= this.#descriptorSize + PROBE_SIZE + VP8_KEYFRAME_HEADER_SIZE) {
      throw new RangeError(`maxPayload ${this.#maxPayload} is too small for VP8`);
    }
  }

  packetize(size: number, keyframe: boolean, sendTimeMs: number, frame: number): Buffer[] {
    const headerSize = keyframe ? VP8_KEYFRAME_HEADER_SIZE : VP8_INTERFRAME_HEADER_SIZE;
    // The VP8 frame header is part of the frame's bytes, so a frame is never smaller than it.
    const frameSize = Math.max(Math.floor(size), headerSize);
    const descriptorSize = this.#descriptorSize;
    const chunks = splitSizes(frameSize, this.#maxPayload - descriptorSize - PROBE_SIZE);
    const payloads = allocateFrame(chunks.map((c) => descriptorSize + c + PROBE_SIZE));
    const pictureId = this.#pictureId;
    this.#pictureId = (this.#pictureId + 1) & 0x7fff;
    const tl0PicIdx = this.#tl0PicIdx;
    this.#tl0PicIdx = (this.#tl0PicIdx + 1) & 0xff;
    payloads.forEach((p, i) => {
      // X=1, S on the first packet of the frame, partition index 0.
      p[0] = i === 0 ? 0x90 : 0x80;
      p[1] = this.#withTl0 ? 0xc0 : 0x80; // I: a PictureID follows; L: a TL0PICIDX
      p[2] = 0x80 | (pictureId >> 8); // M: 15-bit PictureID
      p[3] = pictureId & 0xff;
      if (this.#withTl0) p[4] = tl0PicIdx;
      if (i === 0) {
        writeVp8FrameHeader(
          p.subarray(descriptorSize),
          keyframe,
          frameSize,
          this.#width,
          this.#height,
        );
      }
      writeProbe(p, sendTimeMs, frame);
    });
    return payloads;
  }
}

/** The uncompressed VP8 data chunk header (RFC 6386 section 9.1). */
function writeVp8FrameHeader(
  out: Buffer,
  keyframe: boolean,
  frameSize: number,
  width: number,
  height: number,
): void {
  // A plausible first partition size; nothing decodes these frames, but keep it in range.
  const firstPartSize = Math.min(Math.floor(frameSize / 4), 0x7ffff);
  // Bit 0 is P, the inverse key frame flag; show_frame (bit 4) is set; version 0.
  out[0] = ((firstPartSize & 0x7) << 5) | 0x10 | (keyframe ? 0 : 1);
  out[1] = (firstPartSize >> 3) & 0xff;
  out[2] = (firstPartSize >> 11) & 0xff;
  if (keyframe) {
    // Start code, then the size without scaling, as a real key frame carries.
    out[3] = 0x9d;
    out[4] = 0x01;
    out[5] = 0x2a;
    out.writeUInt16LE(width & 0x3fff, 6);
    out.writeUInt16LE(height & 0x3fff, 8);
  }
}

// ---------------------------------------------------------------------------------------
// H264 (RFC 6184), packetization-mode=1
// ---------------------------------------------------------------------------------------

const NAL_NON_IDR = 1;
const NAL_IDR = 5;
const NAL_STAP_A = 24;
const NAL_FU_A = 28;

/** Parses "42001f" into its three bytes (profile_idc, constraint flags, level_idc). */
export function parseProfileLevelId(profileLevelId: string): [number, number, number] {
  if (!/^[0-9a-fA-F]{6}$/.test(profileLevelId)) {
    throw new RangeError(`profile-level-id must be 6 hex digits, got "${profileLevelId}"`);
  }
  const n = Number.parseInt(profileLevelId, 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

export class H264Packetizer implements Packetizer {
  readonly #maxPayload: number;
  readonly #sps: Buffer;
  readonly #pps = Buffer.from([0x68, 0xce, 0x3c, 0x80]);

  constructor(options: { maxPayload?: number; profileLevelId?: string } = {}) {
    this.#maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    const [profile, constraints, level] = parseProfileLevelId(options.profileLevelId ?? '42e01f');
    // An SPS whose first bytes carry the negotiated profile and level; the rest is filler
    // (nothing decodes these frames, but an SFU may read the profile from here).
    this.#sps = Buffer.from([0x67, profile, constraints, level, 0x8d, 0x68, 0x05, 0x00, 0x5b]);
    if (this.#maxPayload <= 2 + PROBE_SIZE + 1 + 4 + this.#sps.length + this.#pps.length) {
      throw new RangeError(`maxPayload ${this.#maxPayload} is too small for H264`);
    }
  }

  packetize(size: number, keyframe: boolean, sendTimeMs: number, frame: number): Buffer[] {
    const nalType = keyframe ? NAL_IDR : NAL_NON_IDR;
    // NRI 3 for IDR and parameter sets, 2 for the rest, as x264/OpenH264 mark them.
    const nri = keyframe ? 0x60 : 0x40;
    // The NAL unit is its 1-byte header plus `body` bytes.
    const body = Math.max(1, Math.floor(size) - 1);
    const sizes: number[] = [];
    if (keyframe) sizes.push(1 + 2 + this.#sps.length + 2 + this.#pps.length + PROBE_SIZE);
    const single = 1 + body + PROBE_SIZE <= this.#maxPayload;
    const chunks = single ? [body] : splitSizes(body, this.#maxPayload - 2 - PROBE_SIZE);
    for (const c of chunks) sizes.push((single ? 1 : 2) + c + PROBE_SIZE);
    const payloads = allocateFrame(sizes);
    let i = 0;
    if (keyframe) {
      const p = payloads[i++] as Buffer;
      p[0] = 0x60 | NAL_STAP_A;
      let at = 1;
      for (const nal of [this.#sps, this.#pps]) {
        p.writeUInt16BE(nal.length, at);
        nal.copy(p, at + 2);
        at += 2 + nal.length;
      }
      writeProbe(p, sendTimeMs, frame);
    }
    for (let c = 0; c < chunks.length; c++, i++) {
      const p = payloads[i] as Buffer;
      if (single) {
        p[0] = nri | nalType;
      } else {
        p[0] = nri | NAL_FU_A;
        const startBit = c === 0 ? 0x80 : 0;
        const endBit = c === chunks.length - 1 ? 0x40 : 0;
        p[1] = startBit | endBit | nalType;
      }
      writeProbe(p, sendTimeMs, frame);
    }
    return payloads;
  }
}

// ---------------------------------------------------------------------------------------
// Opus-like audio
// ---------------------------------------------------------------------------------------

/** 20 ms CELT fullband stereo frames, one frame per packet (RFC 6716 TOC byte). */
const OPUS_TOC = (31 << 3) | 0x04;

/** One audio payload of `size` bytes (at least the TOC byte and the probe). */
export function buildAudioPayload(size: number, sendTimeMs: number, frame: number): Buffer {
  const p = Buffer.alloc(Math.max(Math.floor(size), 1 + PROBE_SIZE));
  p[0] = OPUS_TOC;
  writeProbe(p, sendTimeMs, frame);
  return p;
}

export type VideoCodecName = 'vp8' | 'h264';

/** Keyframe detection for a received payload of the given codec (audio never has keyframes). */
export function isKeyframePacket(codec: string, payload: Buffer): boolean {
  if (codec === 'vp8') return isVp8Keyframe(payload);
  if (codec === 'h264') return isH264Keyframe(payload);
  return false;
}
