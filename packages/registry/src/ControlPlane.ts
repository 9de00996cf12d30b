import {
  type Logger,
  type NodeConfig,
  RedisConnection,
  type RoomSettings,
  SfuError,
  TokenService,
} from '@geosfu/common';
import { GeoIpLocator } from './GeoIpLocator.js';
import { trustedProxies } from './ip.js';
import { MemoryNodeRegistry } from './MemoryNodeRegistry.js';
import { MemoryRoomSettings } from './MemoryRoomSettings.js';
import { MemoryRoomStore } from './MemoryRoomStore.js';
import type { NodeRegistry } from './NodeRegistry.js';
import { NodeSelector } from './NodeSelector.js';
import { OrphanReaper } from './OrphanReaper.js';
import { RedisNodeRegistry } from './RedisNodeRegistry.js';
import { RedisRoomSettings } from './RedisRoomSettings.js';
import { RedisRoomStore } from './RedisRoomStore.js';
import { type RoomCommand, RoomCommandBus, type RoomCommandHandler } from './RoomCommandBus.js';
import { RoomService } from './RoomService.js';
import type { RoomSettingsStore } from './RoomSettingsStore.js';
import type { RoomStore } from './RoomStore.js';
import { type RouteResult, RouteService, roomHostsOf } from './RouteService.js';
import { WebhookSender } from './WebhookSender.js';

/** What a node (or the directory) needs from the control plane. */
export interface ControlPlane {
  /**
   * The process's one Redis connection (cluster mode), shared by the registry, the room
   * store and the node's relay bus; the plane opened it and closes it last.
   */
  redis: RedisConnection | undefined;
  registry: NodeRegistry;
  /** Room membership shared across the cluster (in memory for a single node). */
  rooms: RoomStore;
  locator: GeoIpLocator | undefined;
  selector: NodeSelector;
  tokens: TokenService;
  /** Removes sessions of nodes missing from the registry (a cluster node only). */
  orphans: OrphanReaper | undefined;
  /** Settings of rooms created through the room service API. */
  roomSettings: RoomSettingsStore;
  /** Room service commands between processes (cluster mode). */
  commands: RoomCommandBus | undefined;
  /** Webhook deliveries, when SFU_WEBHOOK_URLS is set. */
  webhooks: WebhookSender | undefined;
  close(): Promise<void>;
}

/**
 * Builds the control plane from the config: Redis when `REDIS_URL` is set, in memory
 * otherwise (single-node mode); GeoIP when `SFU_GEOIP_DB` is set.
 */
export async function openControlPlane(
  config: NodeConfig,
  logger: Logger,
  options: { watchOnly?: boolean } = {},
): Promise<ControlPlane> {
  if (options.watchOnly && !config.redisUrl) {
    throw new SfuError(
      'CONFIG_INVALID',
      'set REDIS_URL: the directory serves the cluster registry in Redis',
    );
  }
  const timing = { ttlMs: config.registryTtlMs, heartbeatMs: config.heartbeatMs };
  const redis = RedisConnection.fromConfig(config, logger);
  const registry: NodeRegistry = redis
    ? new RedisNodeRegistry({ redis, secret: config.clusterSecret, logger, ...timing })
    : new MemoryNodeRegistry({ logger, ...timing });
  const locator = config.geoipDb
    ? await GeoIpLocator.open({ paths: config.geoipDb, logger })
    : undefined;
  const rooms: RoomStore = redis
    ? new RedisRoomStore({ redis, secret: config.clusterSecret, logger })
    : new MemoryRoomStore({ logger });
  const roomSettings: RoomSettingsStore = redis
    ? new RedisRoomSettings({
        redis,
        secret: config.clusterSecret,
        onRejected: (kind, reason) => rooms.safeEmit('rejected', kind, reason),
      })
    : new MemoryRoomSettings();
  const commands = redis
    ? new RoomCommandBus({ redis, nodeId: config.nodeId, secret: config.clusterSecret, logger })
    : undefined;
  const webhooks =
    config.webhookUrls.length > 0 && config.webhookKey !== undefined
      ? new WebhookSender({
          urls: config.webhookUrls,
          key: config.webhookKey,
          nodeId: config.nodeId,
          logger,
        })
      : undefined;
  try {
    await registry.start();
    await rooms.start();
    await commands?.start();
  } catch (error) {
    webhooks?.close();
    await commands?.close();
    await Promise.allSettled([registry.close(), rooms.close(), locator?.close()]);
    await redis?.close();
    throw error;
  }
  // The directory watches no rooms: only nodes sweep them. One node alone has no orphans.
  const orphans =
    config.redisUrl && !options.watchOnly
      ? new OrphanReaper({ registry, rooms, nodeId: config.nodeId, logger })
      : undefined;
  orphans?.start();
  return {
    redis,
    registry,
    rooms,
    locator,
    selector: new NodeSelector(registry, {
      defaultRegion: config.defaultRegion,
      // A default region without a preset can only be this node's own (located by SFU_LAT/LON).
      ...(config.defaultRegion === config.region ? { defaultLocation: config.location } : {}),
    }),
    tokens: new TokenService(config.apiKey, config.apiSecret),
    orphans,
    roomSettings,
    commands,
    webhooks,
    async close() {
      webhooks?.close();
      roomSettings.close();
      await commands?.close();
      await orphans?.close();
      await Promise.allSettled([registry.close(), rooms.close(), locator?.close()]);
      // Last: its users above leave it first (deregister, unsubscribe).
      await redis?.close();
    },
  };
}

export function routeService(
  plane: ControlPlane,
  config: NodeConfig,
  logger: Logger,
  onDecision?: (r: RouteResult) => void,
): RouteService {
  return new RouteService({
    tokens: plane.tokens,
    selector: plane.selector,
    locator: plane.locator,
    trusted: trustedProxies(config.trustProxy),
    logger,
    roomHosts: roomHostsOf(plane.rooms),
    ...(onDecision ? { onDecision } : {}),
  });
}

/**
 * The room service of a node or of sfu-directory: commands for this process run `local`
 * (a node's own participants), the others go to their node over the signed command bus.
 */
export function roomService(
  plane: ControlPlane,
  config: NodeConfig,
  local?: RoomCommandHandler,
  /** A room was created empty: the caller may watch its empty timeout (RoomLifecycle). */
  createdEmpty?: (room: string, settings: RoomSettings) => void,
): RoomService {
  const dispatch = async (nodeId: string, command: RoomCommand): Promise<unknown> => {
    if (nodeId === config.nodeId && local) return local(command);
    if (!plane.commands) {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `node ${nodeId} holds the participant but this process has no Redis to reach it`,
      );
    }
    return plane.commands.request(nodeId, command);
  };
  if (local) plane.commands?.onCommand(local);
  return new RoomService({
    store: plane.rooms,
    settings: plane.roomSettings,
    dispatch,
    notify: (event) => plane.webhooks?.send(event),
    maxParticipants: config.maxParticipants,
    ...(createdEmpty ? { createdEmpty } : {}),
  });
}
