/**
 * The codecs a node negotiates, and the one conversion between werift's codec parameters and
 * the plain `CodecSpec` that travels in relay messages (a relay link's m-line, a relayed
 * track's publication on the far node).
 */
import { RTCRtpCodecParameters } from 'werift';

/** A codec as it travels between nodes: enough to rebuild werift's codec parameters. */
export interface CodecSpec {
  mimeType: string;
  clockRate: number;
  channels?: number | undefined;
  parameters?: string | undefined;
}

/** What a node asks of a video sender: retransmissions, keyframes, and REMB toward publishers. */
const VIDEO_FEEDBACK = [
  { type: 'nack' },
  { type: 'nack', parameter: 'pli' },
  { type: 'goog-remb' },
];

/** What a relayed video track negotiates, on the relay link and as a publication: NACK and PLI. */
const RELAYED_VIDEO_FEEDBACK = [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }];

/**
 * H264 profiles browsers offer. werift answers H264 only when profile-level-id matches
 * exactly (pitfall 6: Chrome offered 42001f, werift's default is 42e01f and createOffer threw),
 * so the node lists each common profile and negotiates the publisher's own.
 */
const H264_PROFILES = ['42e01f', '42001f', '4d001f', '640c1f', '64001f'];

export function videoCodecs(): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({
      mimeType: 'video/VP8',
      clockRate: 90000,
      rtcpFeedback: VIDEO_FEEDBACK,
    }),
    ...H264_PROFILES.map(
      (profile) =>
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90000,
          rtcpFeedback: VIDEO_FEEDBACK,
          parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${profile}`,
        }),
    ),
  ];
}

export function audioCodecs(): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({
      mimeType: 'audio/opus',
      clockRate: 48000,
      channels: 2,
      rtcpFeedback: [],
    }),
  ];
}

/** The spec of a negotiated codec (a publisher's track), as a relay link announces it. */
export function codecSpecOf(codec: RTCRtpCodecParameters): CodecSpec {
  return {
    mimeType: codec.mimeType,
    clockRate: codec.clockRate,
    ...(codec.channels === undefined ? {} : { channels: codec.channels }),
    ...(codec.parameters === undefined ? {} : { parameters: codec.parameters }),
  };
}

/**
 * werift codec parameters for a relayed track: the relay link's m-line (so that it negotiates
 * exactly the source's codec) and the far node's publication of it. Video gets NACK and PLI.
 */
export function codecFromSpec(spec: CodecSpec): RTCRtpCodecParameters {
  const video = spec.mimeType.toLowerCase().startsWith('video/');
  return new RTCRtpCodecParameters({
    mimeType: spec.mimeType,
    clockRate: spec.clockRate,
    ...(spec.channels === undefined ? {} : { channels: spec.channels }),
    ...(spec.parameters === undefined ? {} : { parameters: spec.parameters }),
    rtcpFeedback: video ? RELAYED_VIDEO_FEEDBACK.map((f) => ({ ...f })) : [],
  });
}
