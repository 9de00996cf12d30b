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
export { EARTH_RADIUS_KM, type GeoPoint, greatCircleDistanceKm, isValidGeoPoint } from './geo.js';
export { createRootLogger, type Logger, silentLogger } from './logger.js';
export * from './protocol.js';
export { seededRandom } from './random.js';
export {
  type QuittableRedis,
  quitRedis,
  REDIS_QUIT_TIMEOUT_MS,
  type RedisTiming,
  redactRedisUrl,
  redisClientOptions,
} from './redis.js';
export { REGIONS, type RegionPreset, regionLocation, regionPreset } from './regions.js';
export { STALL_THRESHOLD_MS, StallDetector } from './StallDetector.js';
export {
  type AccessToken,
  Grants,
  type MintOptions,
  parseDurationSeconds,
  TokenService,
} from './token.js';
