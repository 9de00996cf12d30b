import { parseVp8 } from '@geosfu/media';

/**
 * Every RTP packet one subscribed track delivered to the bot, in arrival order: what a test
 * checks for continuity across simulcast layer switches (sequence numbers +1, timestamps
 * never back, VP8 PictureIDs continuous) and which layer sizes it decoded (the width and
 * height of each VP8 keyframe's frame header). Opt-in per track (`Bot.recordRtp`), so that
 * the receive path of other streams pays one map lookup.
 */
export class RtpLog {
  readonly sequenceNumbers: number[] = [];
  readonly timestamps: number[] = [];
  /** VP8 PictureID of each packet, -1 without one (other codecs). */
  readonly pictureIds: number[] = [];
  /** Index (into the arrays above) of each packet that starts a keyframe. */
  readonly keyframes: number[] = [];
  /** The frame size each keyframe of `keyframes` announces (VP8), 0 x 0 when unknown. */
  readonly keyframeSizes: { width: number; height: number }[] = [];

  get length(): number {
    return this.sequenceNumbers.length;
  }

  /** One packet as it arrived (`codec`: lower-case name, e.g. 'vp8'). */
  push(sequenceNumber: number, timestamp: number, payload: Buffer, codec: string): void {
    const index = this.sequenceNumbers.length;
    this.sequenceNumbers.push(sequenceNumber);
    this.timestamps.push(timestamp);
    const vp8 = codec === 'vp8' ? parseVp8(payload) : undefined;
    this.pictureIds.push(vp8?.pictureId ?? -1);
    if (!vp8?.keyframe) return;
    this.keyframes.push(index);
    // RFC 6386 section 9.1: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and
    // height (the top two bits of each are the scaling).
    const at = vp8.size;
    const startCode =
      payload[at + 3] === 0x9d && payload[at + 4] === 0x01 && payload[at + 5] === 0x2a;
    this.keyframeSizes.push(
      startCode && payload.length >= at + 10
        ? {
            width: payload.readUInt16LE(at + 6) & 0x3fff,
            height: payload.readUInt16LE(at + 8) & 0x3fff,
          }
        : { width: 0, height: 0 },
    );
  }
}
