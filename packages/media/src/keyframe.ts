/** Keyframe detection on received RTP payloads, one detector per codec. */
import { isVp8Keyframe } from './vp8.js';

/** True for an H264 IDR or SPS (RFC 6184: single NAL, STAP-A or FU-A start). */
export function isH264Keyframe(payload: Uint8Array): boolean {
  if (payload.length < 2) return false;
  const nal = (payload[0] ?? 0) & 0x1f;
  if (nal === 5 || nal === 7) return true;
  if (nal === 24) {
    // STAP-A: 1-byte header, then [2-byte size, NAL]...
    let i = 1;
    while (i + 2 < payload.length) {
      const size = ((payload[i] ?? 0) << 8) | (payload[i + 1] ?? 0);
      const t = (payload[i + 2] ?? 0) & 0x1f;
      if (t === 5 || t === 7) return true;
      i += 2 + size;
    }
    return false;
  }
  if (nal === 28) {
    const fu = payload[1] ?? 0;
    return (fu & 0x80) !== 0 && ((fu & 0x1f) === 5 || (fu & 0x1f) === 7);
  }
  return false;
}

const never = (_payload: Uint8Array): boolean => false;

/**
 * The keyframe detector for a codec's MIME type (case-insensitive): VP8 and H264 have one,
 * anything else (audio, a codec we do not parse) never starts a keyframe.
 */
export function keyframeDetector(mimeType: string): (payload: Uint8Array) => boolean {
  const mime = mimeType.toLowerCase();
  if (mime === 'video/vp8') return isVp8Keyframe;
  if (mime === 'video/h264') return isH264Keyframe;
  return never;
}
