/**
 * How the page encodes its camera: three simulcast layers (rids `q`, `h`, `f` at 1/4, 1/2 and
 * full size) for a capture large enough to be worth it, one layer otherwise. Pure, so that it
 * is tested without a browser; the encodings are what `addTransceiver`'s `sendEncodings`
 * takes, the layers what the `publish` request declares (`tracks[i].layers`).
 */
import type { SimulcastLayer } from '@geosfu/common/protocol';

/** One `RTCRtpEncodingParameters` of the camera's sender (a subset the page sets). */
export interface SimulcastEncoding {
  rid: string;
  scaleResolutionDownBy: number;
  /** Bits per second. */
  maxBitrate: number;
  active: boolean;
}

export interface SimulcastPlan {
  /** Lowest first, as in the SDP's `a=simulcast:send q;h;f`. */
  encodings: SimulcastEncoding[];
  /** The same layers as the node is told about them, lowest first. */
  layers: SimulcastLayer[];
}

/**
 * Below this capture width the page sends one layer: a quarter of 320 px is 80 px, about the
 * smallest picture worth decoding, and a small capture costs little to send whole anyway.
 */
export const SIMULCAST_MIN_WIDTH = 320;

/**
 * The layers, lowest first. The caps follow what Chrome itself picks for 180p/360p/720p VP8
 * simulcast (webrtc's simulcast_utils: 150, 500 and 1200-2500 kbit/s), with the top layer at
 * 1.5 Mbit/s: enough for 720p at 24-30 fps of a talking head.
 */
export const SIMULCAST_LAYERS: readonly { rid: string; scale: number; maxBitrate: number }[] =
  Object.freeze([
    { rid: 'q', scale: 4, maxBitrate: 150_000 },
    { rid: 'h', scale: 2, maxBitrate: 500_000 },
    { rid: 'f', scale: 1, maxBitrate: 1_500_000 },
  ]);

/**
 * The simulcast plan for a capture of `width` x `height` (the track's settings), or null when
 * it should go out as one layer: a capture under `SIMULCAST_MIN_WIDTH` wide, or of unknown size.
 * Sizes are rounded the way the encoder scales them (to the nearest pixel).
 */
export function planSimulcast(
  width: number | undefined,
  height: number | undefined,
): SimulcastPlan | null {
  if (width === undefined || height === undefined) return null;
  if (!Number.isFinite(width) || !Number.isFinite(height) || height < 1) return null;
  if (width < SIMULCAST_MIN_WIDTH) return null;
  const encodings: SimulcastEncoding[] = [];
  const layers: SimulcastLayer[] = [];
  for (const { rid, scale, maxBitrate } of SIMULCAST_LAYERS) {
    encodings.push({ rid, scaleResolutionDownBy: scale, maxBitrate, active: true });
    layers.push({
      rid,
      width: Math.max(1, Math.round(width / scale)),
      height: Math.max(1, Math.round(height / scale)),
      maxBitrate,
    });
  }
  return { encodings, layers };
}

/**
 * Which encodings to send when the node asks for `requested` rids (dynacast): those, and
 * always the lowest, so that a subscriber that joins meanwhile gets a picture at once and the
 * encoder never stops altogether (Chrome restarts a fully paused sender with a keyframe
 * delay). Unknown rids are ignored. Returns the `active` flag per encoding, in order.
 */
export function activeFlags(
  encodings: readonly { rid?: string | undefined }[],
  requested: readonly string[],
): boolean[] {
  const wanted = new Set(requested);
  return encodings.map((e, i) => i === 0 || (e.rid !== undefined && wanted.has(e.rid)));
}
