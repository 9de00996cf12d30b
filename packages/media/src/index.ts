export {
  allocateLayers,
  type LayerOption,
  UPGRADE_MARGIN,
  type VideoDemand,
} from './allocateLayers.js';
export {
  BandwidthEstimator,
  type BandwidthEstimatorOptions,
  type PacketFeedback,
  type RateState,
} from './BandwidthEstimator.js';
export { REORDER_WINDOW, RtpMunger, seqDiff } from './RtpMunger.js';
export { Vp8Munger } from './Vp8Munger.js';
export {
  isVp8Keyframe,
  parseVp8,
  type Vp8Descriptor,
  writeVp8PictureId,
  writeVp8Tl0PicIdx,
} from './vp8.js';
