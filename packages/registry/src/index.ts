export { type ControlPlane, openControlPlane, roomService, routeService } from './ControlPlane.js';
export { Directory } from './Directory.js';
export {
  DEFAULT_GEOIP_POLL_MS,
  GeoIpLocator,
  type GeoIpLocatorEvents,
  type GeoIpLocatorOptions,
  type GeoLookup,
} from './GeoIpLocator.js';
export { clientError, errorHandlers, jsonBody } from './httpErrors.js';
export {
  HTTP_SESSION_KINDS,
  type HttpSessionKind,
  httpSessionCors,
  httpSessionPreflight,
  httpSessionRedirectRouter,
  pathParam,
  routeHttpSession,
} from './httpSessionRoute.js';
export {
  clientAddress,
  isPrivateAddress,
  normalizeIp,
  type TrustedProxies,
  trustedProxies,
} from './ip.js';
export { DEFAULT_KEY_PREFIX, type RegistryKeys, registryKeys } from './keys.js';
export {
  MemoryNodeRegistry,
  type MemoryNodeRegistryOptions,
  MemoryNodeStore,
} from './MemoryNodeRegistry.js';
export { MemoryRoomSettings } from './MemoryRoomSettings.js';
export {
  MAX_ROOM_LENGTH,
  MemoryRoomHub,
  MemoryRoomStore,
  type MemoryRoomStoreOptions,
  REAP_ORIGIN,
  RoomEventSchema,
  SessionRecordSchema,
} from './MemoryRoomStore.js';
export { listenMetrics, type MetricsServer } from './metricsServer.js';
export {
  NodeLoad,
  NodeRecord,
  type NodeRecordInput,
  NodeState,
  type NodeUpdate,
  parseNodeRecord,
} from './NodeRecord.js';
export {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_TTL_MS,
  MAX_TTL_MS,
  MIN_HEARTBEAT_MS,
  MIN_TTL_MS,
  type NodeDownReason,
  type NodeRegistry,
  type NodeRegistryEvents,
  type RegistryTimingOptions,
  resolveTiming,
} from './NodeRegistry.js';
export {
  DEFAULT_NEARBY_RADIUS_KM,
  type NodePin,
  NodeSelector,
  type NodeSelectorOptions,
  type NodeSource,
  type Selection,
  type SelectionReason,
  type SelectRequest,
  selectNode,
} from './NodeSelector.js';
export {
  OrphanReaper,
  type OrphanReaperEvents,
  type OrphanReaperOptions,
} from './OrphanReaper.js';
export { RedisNodeRegistry, type RedisNodeRegistryOptions } from './RedisNodeRegistry.js';
export { RedisRoomSettings } from './RedisRoomSettings.js';
export { RedisRoomStore, type RedisRoomStoreOptions, ROOM_TTL_MS } from './RedisRoomStore.js';
export {
  ROOM_COMMAND_TIMEOUT_MS,
  RoomCommand,
  RoomCommandBus,
  type RoomCommandBusEvents,
  type RoomCommandHandler,
  type RoomCommandRejectReason,
} from './RoomCommandBus.js';
export { RoomLifecycle } from './RoomLifecycle.js';
export { ROOM_LOCK_ATTEMPTS, ROOM_LOCK_TTL_MS } from './RoomLock.js';
export { DEFAULT_EMPTY_TIMEOUT_S, RoomService, relayLinksOf } from './RoomService.js';
export type { RoomSettingsStore } from './RoomSettingsStore.js';
export type {
  JoinResult,
  RoomEvent,
  RoomStore,
  RoomStoreEvents,
  SessionChange,
  SessionRecord,
} from './RoomStore.js';
export {
  type RouteAnswer,
  type RouteRequest,
  type RouteResult,
  RouteService,
} from './RouteService.js';
export { roomServiceRouter } from './roomServiceApi.js';
export { bearerToken, devTokenRouter, routeRouter } from './routeApi.js';
export {
  WEBHOOK_MAX_ATTEMPTS,
  type WebhookInput,
  type WebhookResult,
  WebhookSender,
  type WebhookSenderEvents,
} from './WebhookSender.js';
