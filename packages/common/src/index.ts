export {
  CLUSTER_STATE_KINDS,
  CLUSTER_STATE_VERSION,
  type ClusterRejectKind,
  type ClusterRejectReason,
  ClusterStateCodec,
  type ClusterStateKind,
  type Freshness,
  MAX_CLUSTER_STATE_BYTES,
  type OpenOptions,
  type StateOpenResult,
} from './ClusterStateCodec.js';
export {
  CONFIG_FIELDS,
  type ConfigKey,
  configMarkdownTable,
  DEV_API_KEY,
  DEV_API_SECRET,
  DEV_CLUSTER_SECRET,
  loadConfig,
  type NodeConfig,
  requireLocation,
} from './config.js';
export { InvalidStateError, SfuError, toSfuError } from './errors.js';
export { type EventMap, TypedEmitter } from './events.js';
export { FileWatch, type FileWatchOptions } from './FileWatch.js';
export { EARTH_RADIUS_KM, type GeoPoint, greatCircleDistanceKm, isValidGeoPoint } from './geo.js';
export { Lifecycle } from './Lifecycle.js';
export { createRootLogger, type Logger, silentLogger } from './logger.js';
export { roomServiceOpenApi } from './openapi.js';
export * from './protocol.js';
export {
  type MessageHandler,
  REDIS_PROBE_INTERVAL_MS,
  RedisConnection,
  type RedisConnectionEvents,
  type RedisConnectionOptions,
  type RedisConnectionState,
  type ScriptRunner,
} from './RedisConnection.js';
export { RoomServiceClient, type RoomServiceClientOptions } from './RoomServiceClient.js';
export { seededRandom } from './random.js';
export { isReplyError, REDIS_QUIT_TIMEOUT_MS, redactRedisUrl } from './redis.js';
export { REGIONS, type RegionPreset, regionLocation, regionPreset } from './regions.js';
export * from './roomService.js';
export { STALL_THRESHOLD_MS, StallDetector } from './StallDetector.js';
export {
  canonicalJson,
  deriveKey,
  MAX_CLOCK_SKEW_MS,
  MIN_SECRET_LENGTH,
  newMessageId,
  parseBoundedJson,
  REPLAY_WINDOW_MS,
  ReplayWindow,
  signEnvelope,
  staleness,
  verifyEnvelope,
} from './signing.js';
export { TaskTimer } from './TaskTimer.js';
export { ThrottledWarn } from './ThrottledWarn.js';
export {
  type AccessToken,
  Grants,
  type MintOptions,
  parseDurationSeconds,
  TokenService,
} from './token.js';
export { signWebhook, verifyWebhook, WEBHOOK_TOLERANCE_MS } from './webhookSignature.js';
