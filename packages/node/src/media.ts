/**
 * werift configuration shared by every PeerConnection of a node, and the RTCP helpers.
 * Each choice here answers a pitfall measured on this machine (see docs/ARCHITECTURE.md
 * and ../shared/WERIFT-NOTES.md).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { NodeConfig } from '@geosfu/common';
import {
  PictureLossIndication,
  ReceiverEstimatedMaxBitrate,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  RtcpPayloadSpecificFeedback,
  RtpHeader,
  RtpPacket,
  useAbsSendTime,
  useSdesMid,
} from 'werift';

const VIDEO_FEEDBACK = [
  { type: 'nack' },
  { type: 'nack', parameter: 'pli' },
  { type: 'goog-remb' },
];

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

/** ICE options from the node's config. The node is ICE-lite: it never gathers through STUN. */
export function iceOptions(
  config: Pick<NodeConfig, 'rtcPortRange' | 'rtcHostAddresses' | 'announcedIps'>,
) {
  const options: RTCPeerConnectionConfig = {
    // Pitfall 1: without STUN servers werift falls back to Google's public STUN server and a
    // full agent stalls 5 s per side here. ICE-lite gathers host candidates only, and
    // iceStunGatherTimeout 0 is the belt to those braces.
    iceLite: true,
    iceStunGatherTimeout: 0,
    iceServers: [],
  };
  if (config.rtcPortRange) options.icePortRange = [config.rtcPortRange[0], config.rtcPortRange[1]];
  const extra = [...(config.rtcHostAddresses ?? []), ...config.announcedIps];
  if (config.rtcHostAddresses) {
    // Only the listed addresses: werift otherwise adds every non-loopback interface.
    options.iceUseIpv4 = false;
    options.iceUseIpv6 = false;
    // And bind the sockets to them: a socket on 0.0.0.0 answers a check that arrived on
    // 127.0.0.1 from the interface address the kernel picks for the reply, and Chromium drops
    // a STUN response from an address it did not send to (seen in the e2e test).
    const v4 = config.rtcHostAddresses.filter((a) => isIPv4(a));
    const v6 = config.rtcHostAddresses.filter((a) => isIPv6(a));
    const bind: { udp4?: string; udp6?: string } = {};
    if (v4.length === 1) bind.udp4 = v4[0];
    if (v6.length === 1) bind.udp6 = v6[0];
    if (bind.udp4 || bind.udp6) options.iceInterfaceAddresses = bind;
  }
  if (extra.length > 0) options.iceAdditionalHostAddresses = extra;
  return options;
}

/**
 * The publisher side: we receive. No transport-cc (pitfall 3: Chrome's estimate collapsed to
 * ~100 kbps with werift), so the node sends REMB itself. Only the mid extension, which werift
 * needs to demultiplex a bundle before SSRCs are known.
 */
export function publisherPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return {
    ...iceOptions(config),
    bundlePolicy: 'max-bundle', // pitfall 2: max-compat leaks a socket per m-line on close
    codecs: { audio: audioCodecs(), video: videoCodecs() },
    headerExtensions: { audio: [useSdesMid()], video: [useSdesMid()] },
  };
}

/** The subscriber side: we send. abs-send-time lets the browser estimate bandwidth (REMB). */
export function subscriberPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return {
    ...iceOptions(config),
    bundlePolicy: 'max-bundle',
    codecs: { audio: audioCodecs(), video: videoCodecs() },
    headerExtensions: { audio: [useSdesMid()], video: [useSdesMid(), useAbsSendTime()] },
  };
}

/**
 * Relay links, sending side: the one full ICE agent in the system (it is the controlling
 * side toward the far node, which is ICE-lite like every node PC). No STUN wait: nodes reach
 * each other on the addresses they announce.
 */
export function relaySenderPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return {
    ...iceOptions(config),
    iceLite: false,
    bundlePolicy: 'max-bundle',
    codecs: { audio: audioCodecs(), video: videoCodecs() },
    headerExtensions: { audio: [useSdesMid()], video: [useSdesMid()] },
  };
}

/** Relay links, receiving side: ICE-lite, like a publisher's PC. */
export function relayReceiverPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return publisherPeerConfig(config);
}

/**
 * Copies a packet without its header extensions, serialized once so that each subscriber's
 * sender deserializes its own copy. Forwarding the publisher's extensions is wrong (pitfall 5:
 * its transport-cc id 4 overwrote the subscriber's abs-send-time id 4), and werift's sender
 * mutates the header it is given, so one packet object must never go to two senders.
 */
export function forwardablePacket(rtp: RtpPacket): Buffer {
  const h = rtp.header;
  const header = new RtpHeader({
    version: 2,
    padding: false,
    extension: false,
    marker: h.marker,
    payloadType: h.payloadType,
    sequenceNumber: h.sequenceNumber,
    timestamp: h.timestamp,
    ssrc: h.ssrc,
    csrc: [],
    extensions: [],
  });
  return new RtpPacket(header, rtp.payload).serialize();
}

/** A REMB packet (draft-alvestrand-rmcat-remb) telling a publisher how much it may send. */
export function rembPacket(senderSsrc: number, mediaSsrcs: number[], bitrate: number) {
  // bitrate = mantissa * 2^exp with an 18-bit mantissa.
  let exp = 0;
  let mantissa = Math.floor(bitrate);
  while (mantissa >= 1 << 18) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  return new RtcpPayloadSpecificFeedback({
    feedback: new ReceiverEstimatedMaxBitrate({
      senderSsrc,
      mediaSsrc: 0,
      brExp: exp,
      brMantissa: mantissa,
      ssrcNum: mediaSsrcs.length,
      ssrcFeedbacks: mediaSsrcs,
    }),
  });
}

export function pliPacket(senderSsrc: number, mediaSsrc: number) {
  return new RtcpPayloadSpecificFeedback({
    feedback: new PictureLossIndication({ senderSsrc, mediaSsrc }),
  });
}

/** True for a VP8 keyframe (RFC 7741: start of partition 0 and the P bit clear). */
export function isVp8Keyframe(payload: Buffer): boolean {
  if (payload.length < 3) return false;
  const b0 = payload[0] ?? 0;
  const start = (b0 & 0x10) !== 0 && (b0 & 0x07) === 0;
  if (!start) return false;
  let i = 1;
  if (b0 & 0x80) {
    const x = payload[1] ?? 0;
    i = 2;
    if (x & 0x80) i += (payload[i] ?? 0) & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (x & 0x40) i += 1; // TL0PICIDX
    if (x & 0x30) i += 1; // TID/KEYIDX
  }
  return ((payload[i] ?? 1) & 0x01) === 0;
}

/** True for an H264 IDR or SPS (RFC 6184: single NAL, STAP-A or FU-A start). */
export function isH264Keyframe(payload: Buffer): boolean {
  if (payload.length < 2) return false;
  const nal = (payload[0] ?? 0) & 0x1f;
  if (nal === 5 || nal === 7) return true;
  if (nal === 24) {
    // STAP-A: 1-byte header, then [2-byte size, NAL]...
    let i = 1;
    while (i + 2 < payload.length) {
      const size = payload.readUInt16BE(i);
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
