/**
 * The VP8 payload descriptor (RFC 7741 section 4.2): what a forwarder reads to find keyframes
 * and temporal layers, and rewrites so that a subscriber's decoder sees one continuous stream
 * when the forwarder switches between simulcast layers (each layer numbers its pictures on
 * its own).
 *
 *      0 1 2 3 4 5 6 7
 *     +-+-+-+-+-+-+-+-+
 *     |X|R|N|S|R| PID |   required
 *     +-+-+-+-+-+-+-+-+
 *  X: |I|L|T|K| RSV   |   when X
 *     +-+-+-+-+-+-+-+-+
 *  I: |M| PictureID   |   when I; M set: 15 bits over two bytes
 *     +-+-+-+-+-+-+-+-+
 *  L: |   TL0PICIDX   |   when L
 *     +-+-+-+-+-+-+-+-+
 *  T/K: |TID|Y| KEYIDX|   when T or K
 *     +-+-+-+-+-+-+-+-+
 */

/** What a VP8 packet's descriptor says; offsets are into the RTP payload. */
export interface Vp8Descriptor {
  /** Size of the descriptor in bytes: the VP8 payload header starts here. */
  readonly size: number;
  /** PictureID, or -1 when absent. */
  readonly pictureId: number;
  /** 7 or 15 (the M bit), 0 when there is no PictureID. */
  readonly pictureIdBits: 0 | 7 | 15;
  readonly pictureIdOffset: number;
  /** TL0PICIDX, or -1 when absent. */
  readonly tl0PicIdx: number;
  readonly tl0PicIdxOffset: number;
  /** Temporal layer id, or -1 when absent. */
  readonly temporalId: number;
  /** Y: this frame depends only on temporal layer 0 (a switching point up). */
  readonly layerSync: boolean;
  /** S set and partition 0: the first packet of a frame. */
  readonly frameStart: boolean;
  /** The first packet of a keyframe (the P bit of the payload header clear). */
  readonly keyframe: boolean;
}

/** Parses the descriptor; undefined for a payload too short to hold what it announces. */
export function parseVp8(payload: Uint8Array): Vp8Descriptor | undefined {
  const b0 = payload[0];
  if (b0 === undefined) return undefined;
  let i = 1;
  let pictureId = -1;
  let pictureIdBits: 0 | 7 | 15 = 0;
  let pictureIdOffset = -1;
  let tl0PicIdx = -1;
  let tl0PicIdxOffset = -1;
  let temporalId = -1;
  let layerSync = false;
  if (b0 & 0x80) {
    const x = payload[i++];
    if (x === undefined) return undefined;
    if (x & 0x80) {
      const m = payload[i];
      if (m === undefined) return undefined;
      pictureIdOffset = i;
      if (m & 0x80) {
        const low = payload[i + 1];
        if (low === undefined) return undefined;
        pictureId = ((m & 0x7f) << 8) | low;
        pictureIdBits = 15;
        i += 2;
      } else {
        pictureId = m & 0x7f;
        pictureIdBits = 7;
        i += 1;
      }
    }
    if (x & 0x40) {
      const l = payload[i];
      if (l === undefined) return undefined;
      tl0PicIdxOffset = i;
      tl0PicIdx = l;
      i += 1;
    }
    if (x & 0x30) {
      const t = payload[i];
      if (t === undefined) return undefined;
      if (x & 0x20) {
        temporalId = t >> 6;
        layerSync = (t & 0x20) !== 0;
      }
      i += 1;
    }
  }
  const frameStart = (b0 & 0x10) !== 0 && (b0 & 0x07) === 0;
  const header = payload[i];
  return {
    size: i,
    pictureId,
    pictureIdBits,
    pictureIdOffset,
    tl0PicIdx,
    tl0PicIdxOffset,
    temporalId,
    layerSync,
    frameStart,
    keyframe: frameStart && header !== undefined && (header & 0x01) === 0,
  };
}

/** True for the first packet of a VP8 keyframe. */
export function isVp8Keyframe(payload: Uint8Array): boolean {
  return parseVp8(payload)?.keyframe ?? false;
}

/**
 * Writes `pictureId` (taken modulo the field's width) into the payload, in place. `offset`:
 * where the payload starts in `payload` (a whole RTP packet's buffer, without a copy).
 */
export function writeVp8PictureId(
  payload: Uint8Array,
  descriptor: Vp8Descriptor,
  pictureId: number,
  offset = 0,
): void {
  const at = offset + descriptor.pictureIdOffset;
  if (descriptor.pictureIdBits === 15) {
    const v = pictureId & 0x7fff;
    payload[at] = 0x80 | (v >> 8);
    payload[at + 1] = v & 0xff;
  } else if (descriptor.pictureIdBits === 7) {
    payload[at] = pictureId & 0x7f;
  }
}

/** Writes `tl0PicIdx` (modulo 256) into the payload, in place; `offset` as above. */
export function writeVp8Tl0PicIdx(
  payload: Uint8Array,
  descriptor: Vp8Descriptor,
  tl0PicIdx: number,
  offset = 0,
): void {
  if (descriptor.tl0PicIdxOffset >= 0)
    payload[offset + descriptor.tl0PicIdxOffset] = tl0PicIdx & 0xff;
}
