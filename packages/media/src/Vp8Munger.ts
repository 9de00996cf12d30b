import { type Vp8Descriptor, writeVp8PictureId, writeVp8Tl0PicIdx } from './vp8.js';

/**
 * Keeps the VP8 PictureID and TL0PICIDX of one outgoing stream continuous across source
 * switches (simulcast layers number their pictures independently): a decoder that sees the
 * PictureID jump backwards takes the new layer's frames for old ones, or for a gap.
 * Rewrites the payload in place; the caller forwards a copy it owns.
 */
export class Vp8Munger {
  #pictureOffset = 0;
  #tl0Offset = 0;
  #started = false;
  #lastPictureId = 0;
  #lastTl0 = 0;

  /** Starts a new source at this descriptor (the first packet of its keyframe). */
  switchTo(descriptor: Vp8Descriptor): void {
    if (!this.#started) return;
    if (descriptor.pictureId >= 0)
      this.#pictureOffset = this.#lastPictureId + 1 - descriptor.pictureId;
    if (descriptor.tl0PicIdx >= 0) this.#tl0Offset = this.#lastTl0 + 1 - descriptor.tl0PicIdx;
  }

  /** Rewrites the packet's PictureID and TL0PICIDX for the current source. */
  rewrite(payload: Uint8Array, descriptor: Vp8Descriptor): void {
    if (descriptor.pictureId >= 0) {
      const mask = descriptor.pictureIdBits === 15 ? 0x7fff : 0x7f;
      const out = (descriptor.pictureId + this.#pictureOffset) & mask;
      writeVp8PictureId(payload, descriptor, out);
      if (!this.#started || pictureAhead(out, this.#lastPictureId, mask)) this.#lastPictureId = out;
    }
    if (descriptor.tl0PicIdx >= 0) {
      const out = (descriptor.tl0PicIdx + this.#tl0Offset) & 0xff;
      writeVp8Tl0PicIdx(payload, descriptor, out);
      if (!this.#started || pictureAhead(out, this.#lastTl0, 0xff)) this.#lastTl0 = out;
    }
    this.#started = true;
  }
}

/** a is after b in a counter that wraps at mask + 1. */
function pictureAhead(a: number, b: number, mask: number): boolean {
  const half = (mask + 1) / 2;
  const d = (a - b) & mask;
  return d !== 0 && d < half;
}
