/**
 * werift configuration of every PeerConnection a node opens. Each choice here answers a
 * pitfall measured on this machine (see docs/ARCHITECTURE.md and ../shared/WERIFT-NOTES.md).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { NodeConfig } from '@geosfu/common';
import {
  type RTCPeerConnectionConfig,
  type RTCRtpCodecParameters,
  useAbsSendTime,
  useSdesMid,
  useSdesRTPStreamId,
  useTransportWideCC,
} from 'werift';
import { audioCodecs, videoCodecs } from './codecs.js';

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
 * The publisher side: we receive. Transport-wide CC is negotiated (the header extension and
 * `a=rtcp-fb:* transport-cc`) so that the publisher's send-side estimator gets per-packet
 * arrival feedback: the node sends it itself (`TwccFeedback`; werift's own generator is
 * silenced, pitfall 3). REMB stays, as a cap (`maxPublishBitrate`): Chrome sends at most the
 * smaller of its estimate and the REMB. The mid extension, which werift needs to demultiplex
 * a bundle before SSRCs are known, and for video the rid extension (rtp-stream-id), by which
 * werift routes each simulcast layer to its rid's track (pitfall 7). No
 * repaired-rtp-stream-id: RTX is not negotiated, so no repair stream comes (werift's router
 * could not route one by rid anyway).
 */
export function publisherPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return {
    ...receiverPeerConfig(config),
    codecs: {
      audio: withTransportCc(audioCodecs()),
      video: withTransportCc(videoCodecs()),
    },
    // The client offers, so the ids in use are the offer's.
    headerExtensions: {
      audio: [useSdesMid(), useTransportWideCC()],
      video: [useSdesMid(), useSdesRTPStreamId(), useTransportWideCC()],
    },
  };
}

/** A receiving PeerConnection with no congestion feedback but the node's REMB (relay links). */
function receiverPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return {
    ...iceOptions(config),
    bundlePolicy: 'max-bundle', // pitfall 2: max-compat leaks a socket per m-line on close
    codecs: { audio: audioCodecs(), video: videoCodecs() },
    headerExtensions: { audio: [useSdesMid()], video: [useSdesMid(), useSdesRTPStreamId()] },
  };
}

/** `codecs` (fresh objects) with transport-cc feedback added. */
function withTransportCc(codecs: RTCRtpCodecParameters[]): RTCRtpCodecParameters[] {
  for (const codec of codecs)
    codec.rtcpFeedback = [...codec.rtcpFeedback, { type: 'transport-cc' }];
  return codecs;
}

/**
 * The subscriber side: we send, and estimate the subscriber's downlink from its transport-wide
 * congestion control feedback (TransportCongestionControl): the transport-cc header extension
 * on every m-line, audio too (every packet on the transport counts toward the estimate), and
 * `a=rtcp-fb:<pt> transport-cc`, without which Chrome does not send the feedback. abs-send-time
 * stays for receivers that estimate by themselves.
 */
export function subscriberPeerConfig(
  config: Pick<NodeConfig, 'rtcPortRange' | 'rtcHostAddresses' | 'announcedIps'>,
): RTCPeerConnectionConfig {
  // The same objects in both lists: werift numbers the extensions of the audio list, then of
  // the video list (id = position), so separate objects gave one URI two ids in one bundle
  // (transport-cc 2 on audio, 5 on video). Chrome keeps one extension map per bundle, the
  // last m-line's, and read transport-cc on one kind only: its feedback reported 4 packets
  // in 5 lost on a clean link. A shared object gets the id of its last position, on both.
  const mid = useSdesMid();
  const transportCc = useTransportWideCC();
  return {
    ...iceOptions(config),
    bundlePolicy: 'max-bundle',
    codecs: { audio: withTransportCc(audioCodecs()), video: withTransportCc(videoCodecs()) },
    headerExtensions: {
      audio: [mid, transportCc],
      video: [mid, transportCc, useAbsSendTime()],
    },
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

/**
 * Relay links, receiving side: ICE-lite, like a publisher's PC, but without transport-cc (the
 * sending node does not estimate from feedback on a relay link).
 */
export function relayReceiverPeerConfig(config: NodeConfig): RTCPeerConnectionConfig {
  return receiverPeerConfig(config);
}
