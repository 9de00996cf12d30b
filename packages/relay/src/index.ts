export {
  ANSWER_CACHE_TTL_MS,
  BaseRelayBus,
  type BaseRelayBusOptions,
  HANDLER_DEADLINE_MS,
} from './BaseRelayBus.js';
export {
  canonicalJson,
  deriveRelayKey,
  EnvelopeCodec,
  MAX_CLOCK_SKEW_MS,
  MIN_SECRET_LENGTH,
  newMessageId,
  type OpenResult,
  RELAY_PROTOCOL_VERSION,
  REPLAY_WINDOW_MS,
  type RejectReason,
  type RelayMessage,
  type SealInput,
  signEnvelope,
} from './EnvelopeCodec.js';
export { MemoryRelayBus, type MemoryRelayBusOptions, MemoryRelayHub } from './MemoryRelayBus.js';
export {
  AnswerBody,
  CloseBody,
  ErrorBody,
  LayerDemand,
  LayersBody,
  MAX_RELAY_MESSAGE_BYTES,
  MAX_RELAY_TRACKS,
  OfferBody,
  RELAY_MESSAGE_TYPES,
  RelayCodec,
  RelayLayer,
  type RelayMessageType,
  type RelayNotices,
  type RelayNoticeType,
  type RelayRequests,
  type RelayRequestType,
  RelayTrack,
} from './messages.js';
export { RedisRelayBus, type RedisRelayBusOptions, relayChannel } from './RedisRelayBus.js';
export {
  DEFAULT_REQUEST_ATTEMPTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MAX_REQUEST_ATTEMPTS,
  MAX_REQUEST_TIMEOUT_MS,
  MIN_REQUEST_TIMEOUT_MS,
  type RelayBus,
  type RelayBusEvents,
  type RelayBusState,
  type RelayRequestHandler,
  type RelayRequestOptions,
} from './RelayBus.js';
export { RelayLink, type RelayLinkEvents, type RelayLinkState } from './RelayLink.js';
export { RelayManager, type RelayManagerEvents, type RelayRoomView } from './RelayManager.js';
export {
  type RelayedTrack,
  RelayReceiver,
  type RelayReceiverCloseReason,
  type RelayReceiverEvents,
} from './RelayReceiver.js';
export type { RelayLayerInfo, RelaySink, RelaySource, RelayTrackInfo } from './types.js';
