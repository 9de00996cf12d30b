import type { Vp8Descriptor } from './vp8.js';

/**
 * One RTP packet of a publication as its sinks (outgoing streams) get it: serialized once
 * without header extensions (`forwardablePacket`), with what a sink needs to select a
 * simulcast layer and rewrite the packet read once by the publication, not once per sink.
 * Sinks must not modify `buffer`: one that rewrites numbers copies it first.
 */
export interface ForwardedPacket {
  /** The RTP packet, fixed 12-byte header (no CSRC, no extension) then the payload. */
  readonly buffer: Buffer;
  /** Index of its simulcast layer in the publication, lowest first; 0 when not simulcast. */
  readonly layer: number;
  readonly ssrc: number;
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly marker: boolean;
  /** Video: the first packet of a keyframe, where a sink may switch to this layer. */
  readonly keyframe: boolean;
  /** VP8: its payload descriptor (PictureID, TL0PICIDX to rewrite across switches). */
  readonly vp8: Vp8Descriptor | undefined;
}
