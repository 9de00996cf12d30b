export {
  allocateLayers,
  type LayerOption,
  UPGRADE_MARGIN,
  type VideoDemand,
} from './allocateLayers.js';
export { type BandwidthBudget, UNLIMITED_BUDGET } from './BandwidthBudget.js';
export {
  BandwidthEstimator,
  type BandwidthEstimatorOptions,
  type PacketFeedback,
  type RateState,
} from './BandwidthEstimator.js';
export {
  audioCodecs,
  type CodecSpec,
  codecFromSpec,
  codecSpecOf,
  videoCodecs,
} from './codecs.js';
export {
  encodeTransportFeedback,
  type TransportFeedbackInput,
} from './encodeTransportFeedback.js';
export type { ForwardedPacket } from './ForwardedPacket.js';
export { isH264Keyframe, keyframeDetector } from './keyframe.js';
export {
  KEYFRAME_RETRY_MS,
  OutgoingStream,
  type OutgoingStreamObserver,
  type OutgoingStreamOptions,
} from './OutgoingStream.js';
export { PeerLiveness, type PeerLivenessOptions } from './PeerLiveness.js';
export {
  iceOptions,
  publisherPeerConfig,
  relayReceiverPeerConfig,
  relaySenderPeerConfig,
  subscriberPeerConfig,
} from './peerConfig.js';
export { REORDER_WINDOW, RtpMunger, seqDiff } from './RtpMunger.js';
export { pliPacket, rembPacket } from './rtcp.js';
export { forwardablePacket, RTP_HEADER_SIZE } from './rtp.js';
export {
  TransportCongestionControl,
  type TransportCongestionControlOptions,
} from './TransportCongestionControl.js';
export { TransportSweeper } from './TransportSweeper.js';
export {
  type FeedbackTransport,
  TRANSPORT_CC_URI,
  TwccFeedback,
  type TwccFeedbackOptions,
} from './TwccFeedback.js';
export { transportFeedbackResults, unwrapReferenceTime } from './transportFeedback.js';
export { setUdpReceiveBuffer, udpReceiveBufferHook } from './udpReceiveBuffer.js';
export { Vp8Munger } from './Vp8Munger.js';
export {
  isVp8Keyframe,
  parseVp8,
  type Vp8Descriptor,
  writeVp8PictureId,
  writeVp8Tl0PicIdx,
} from './vp8.js';
export { fixWeriftDtls } from './weriftDtls.js';
export { fixNackWraparound, preferPassiveDtls, silenceWeriftTwcc } from './weriftFixes.js';
export { SRTP_TAG_BYTES, UDP_IP_BYTES, wireBytes } from './wireBytes.js';
