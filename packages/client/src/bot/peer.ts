/**
 * werift PeerConnection settings for bots, with the pitfalls of /work/shared/WERIFT-NOTES.md
 * applied in one place.
 */
import type { IceServer } from '@geosfu/common/protocol';
import {
  type RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpCodecParameters,
  useH264,
  useVP8,
} from 'werift';
import type { VideoCodecName } from './packetizer.js';

export interface PeerOptions {
  iceServers?: IceServer[];
  /** Use only these local addresses for ICE (tests pass ['127.0.0.1']). */
  hostAddresses?: string[];
  /** Drop this percentage of outgoing RTP/RTCP (werift's debug hook), for NACK tests. */
  outboundLossPercent?: number;
  /** Drop this percentage of incoming SRTP/SRTCP. */
  inboundLossPercent?: number;
  /**
   * werift uses only the first TURN URL it is given (Chrome tries them all): put the URLs of
   * this transport first, e.g. `tcp` on a network that drops UDP.
   */
  turnTransport?: TurnTransport;
}

export type TurnTransport = 'udp' | 'tcp' | 'tls';

/** A TURN URL's transport: `turns:` is TLS, else its `?transport=` (UDP by default). */
function transportOf(url: string): TurnTransport | undefined {
  if (/^turns:/i.test(url)) return 'tls';
  if (!/^turn:/i.test(url)) return undefined;
  return /\?transport=tcp$/i.test(url) ? 'tcp' : 'udp';
}

/** `servers` with the TURN URLs of `transport` first (servers, then URLs in a server). */
export function preferTurnTransport(servers: IceServer[], transport: TurnTransport): IceServer[] {
  const rank = (url: string) => (transportOf(url) === transport ? 0 : 1);
  return servers
    .map((s) => ({
      ...s,
      urls: (Array.isArray(s.urls) ? [...s.urls] : [s.urls]).sort((a, b) => rank(a) - rank(b)),
    }))
    .sort((a, b) => Math.min(...a.urls.map(rank)) - Math.min(...b.urls.map(rank)));
}

/** NACK and PLI only: no transport-cc (pitfall 3), no REMB (werift never sends it anyway). */
const VIDEO_FEEDBACK = [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }];

/** Chrome's baseline profile (pitfall 6: H264 negotiates only on an exact profile match). */
export const CHROME_H264_PROFILE = '42001f';
/** werift's `useH264()` default. */
export const WERIFT_H264_PROFILE = '42e01f';

export function h264Codec(profileLevelId: string): RTCRtpCodecParameters {
  return useH264({
    rtcpFeedback: VIDEO_FEEDBACK,
    parameters: `profile-level-id=${profileLevelId};packetization-mode=1;level-asymmetry-allowed=1`,
  });
}

export function publisherVideoCodecs(
  codec: VideoCodecName,
  h264ProfileLevelId = WERIFT_H264_PROFILE,
): RTCRtpCodecParameters[] {
  return codec === 'h264'
    ? [h264Codec(h264ProfileLevelId)]
    : [useVP8({ rtcpFeedback: VIDEO_FEEDBACK })];
}

/** A subscriber takes whatever a publisher sent: VP8 or either common H264 profile. */
export function subscriberVideoCodecs(): RTCRtpCodecParameters[] {
  return [
    useVP8({ rtcpFeedback: VIDEO_FEEDBACK }),
    h264Codec(CHROME_H264_PROFILE),
    h264Codec(WERIFT_H264_PROFILE),
  ];
}

/**
 * werift's debug loss hooks drop a packet when `value / 100 < Math.random()`, i.e. with
 * probability 1 - value/100: `outboundPacketLoss: 5` drops 95%, not 5% (measured: 10 kept
 * ~10% of packets, 90 kept ~90%). So N% loss is `100 - N`, and 0 is "no option at all"
 * (werift treats 0 as off, which is why 100% loss is expressed as a tiny positive value).
 */
export function weriftLossValue(percent: number | undefined): number | undefined {
  if (percent === undefined || percent <= 0) return undefined;
  if (percent >= 100) return Number.MIN_VALUE;
  return 100 - percent;
}

export function peerConfig(
  options: PeerOptions,
  codecs: { video: RTCRtpCodecParameters[]; audio: RTCRtpCodecParameters[] },
): RTCPeerConnectionConfig {
  const config: RTCPeerConnectionConfig = {
    // Pitfall 2: the default max-compat leaks a socket and heap per extra m-line.
    bundlePolicy: 'max-bundle',
    // Pitfall 1: an empty list still makes werift try Google's STUN server and stall 5 s.
    iceServers:
      options.turnTransport === undefined
        ? (options.iceServers ?? [])
        : preferTurnTransport(options.iceServers ?? [], options.turnTransport),
    iceStunGatherTimeout: 0,
    codecs,
    // No header extensions: no transport-cc, and nothing for an SFU to forward by mistake.
    headerExtensions: { video: [], audio: [] },
  };
  if (options.hostAddresses && options.hostAddresses.length > 0) {
    config.iceUseIpv4 = false;
    config.iceUseIpv6 = false;
    config.iceAdditionalHostAddresses = options.hostAddresses;
  }
  const outbound = weriftLossValue(options.outboundLossPercent);
  const inbound = weriftLossValue(options.inboundLossPercent);
  if (outbound !== undefined || inbound !== undefined) {
    config.debug = {
      ...(outbound === undefined ? {} : { outboundPacketLoss: outbound }),
      ...(inbound === undefined ? {} : { inboundPacketLoss: inbound }),
    };
  }
  return config;
}

/** Resolves when the connection is up; rejects on failure, close, or after `timeoutMs`. */
export function waitForConnected(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unSubscribe();
      reject(new Error(`PeerConnection not connected within ${timeoutMs} ms`));
    }, timeoutMs);
    const { unSubscribe } = pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      } else if (state === 'failed' || state === 'closed') {
        clearTimeout(timer);
        unSubscribe();
        reject(new Error(`PeerConnection ${state} before it connected`));
      }
    });
  });
}

/**
 * The local SDP with its candidates. werift gathers inside setLocalDescription (host
 * candidates only, since iceStunGatherTimeout is 0), so the description is complete once that
 * resolves; trickling our own candidates is therefore never needed.
 */
export function localSdp(pc: RTCPeerConnection): string {
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error('no local description');
  return sdp;
}
