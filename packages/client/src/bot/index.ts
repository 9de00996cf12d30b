export { DevTokenError, fetchDevToken, httpBaseUrl } from '../core/devToken.js';
export {
  Bot,
  type BotEvents,
  type BotOptions,
  type BotStats,
  type ChatMessage,
  type SelectedPair,
  type SubscriptionLayerInfo,
} from './Bot.js';
export {
  PROBE_SIZE,
  type Probe,
  readProbe,
  type VideoCodecName,
} from './packetizer.js';
export {
  CHROME_H264_PROFILE,
  type PeerOptions,
  peerConfig,
  preferTurnTransport,
  type TurnTransport,
  WERIFT_H264_PROFILE,
  weriftLossValue,
} from './peer.js';
export { BotPublisher, type PublishExchange, type PublishOptions } from './publisher.js';
export { RtpLog } from './RtpLog.js';
export {
  LATENCY_BUCKET_MS,
  type ReceivedStreamInterval,
  type ReceivedStreamStats,
} from './receivedStream.js';
export { percentile, SequenceTracker } from './receiveStats.js';
export {
  BOT_SIMULCAST_LAYERS,
  RTP_STREAM_ID_URI,
  SimulcastVideoSource,
  simulcastOffer,
} from './simulcast.js';
export { nowMs, type SentLayerStats, type SentStreamStats } from './source.js';
export { BotSubscriber, type ReceivedIntervalStats } from './subscriber.js';
