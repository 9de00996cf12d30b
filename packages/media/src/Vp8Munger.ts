import { type Vp8Descriptor, writeVp8PictureId, writeVp8Tl0PicIdx } from './vp8.js';

/**
 * Keeps the VP8 PictureID and TL0PICIDX of one outgoing stream continuous across source
 * switches (simulcast layers number their pictures independently): a decoder that sees the
 * PictureID jump backwards takes the new layer's frames for old ones, or for a gap.
 *
 * `map` computes a packet's output numbers (no allocation; results in `outPictureId` and
 * `outTl0PicIdx`) and says whether they differ from its own; `write` puts them into a copy
 * the caller owns. Before the first switch the mapping is the identity, so a stream that never
 * switches never needs a copy.
 */
export class Vp8Munger {
  #pictureOffset = 0;
  #tl0Offset = 0;
  #started = false;
  #lastPictureId = 0;
  #lastTl0 = 0;
  /** Output of the last `map`, -1 where the packet has no such field. */
  outPictureId = -1;
  outTl0PicIdx = -1;

  /** Starts a new source at this descriptor (the first packet of its keyframe). */
  switchTo(descriptor: Vp8Descriptor): void {
    if (!this.#started) return;
    if (descriptor.pictureId >= 0)
      this.#pictureOffset = this.#lastPictureId + 1 - descriptor.pictureId;
    if (descriptor.tl0PicIdx >= 0) this.#tl0Offset = this.#lastTl0 + 1 - descriptor.tl0PicIdx;
  }

  /**
   * Maps one forwarded packet's numbers for the current source and remembers the highest;
   * true when they change (the packet must be rewritten with `write`).
   */
  map(descriptor: Vp8Descriptor): boolean {
    let changed = false;
    this.outPictureId = -1;
    this.outTl0PicIdx = -1;
    if (descriptor.pictureId >= 0) {
      const mask = descriptor.pictureIdBits === 15 ? 0x7fff : 0x7f;
      const out = (descriptor.pictureId + this.#pictureOffset) & mask;
      if (!this.#started || pictureAhead(out, this.#lastPictureId, mask)) this.#lastPictureId = out;
      this.outPictureId = out;
      changed = out !== descriptor.pictureId;
    }
    if (descriptor.tl0PicIdx >= 0) {
      const out = (descriptor.tl0PicIdx + this.#tl0Offset) & 0xff;
      if (!this.#started || pictureAhead(out, this.#lastTl0, 0xff)) this.#lastTl0 = out;
      this.outTl0PicIdx = out;
      changed ||= out !== descriptor.tl0PicIdx;
    }
    this.#started = true;
    return changed;
  }

  /** Writes the last `map`'s numbers into `buffer`, whose VP8 payload starts at `offset`. */
  write(buffer: Uint8Array, offset: number, descriptor: Vp8Descriptor): void {
    if (this.outPictureId >= 0) writeVp8PictureId(buffer, descriptor, this.outPictureId, offset);
    if (this.outTl0PicIdx >= 0) writeVp8Tl0PicIdx(buffer, descriptor, this.outTl0PicIdx, offset);
  }

  /** `map` then `write` into `payload` (which the caller owns), in place. */
  rewrite(payload: Uint8Array, descriptor: Vp8Descriptor): void {
    if (this.map(descriptor)) this.write(payload, 0, descriptor);
  }
}

/** a is after b in a counter that wraps at mask + 1. */
function pictureAhead(a: number, b: number, mask: number): boolean {
  const half = (mask + 1) / 2;
  const d = (a - b) & mask;
  return d !== 0 && d < half;
}
