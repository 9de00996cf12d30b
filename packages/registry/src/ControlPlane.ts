import {
  type Logger,
  type NodeConfig,
  RedisConnection,
  SfuError,
  TokenService,
} from '@geosfu/common';
import { GeoIpLocator } from './GeoIpLocator.js';
import { trustedProxies } from './ip.js';
import { MemoryNodeRegistry } from './MemoryNodeRegistry.js';
import { MemoryRoomStore } from './MemoryRoomStore.js';
import type { NodeRegistry } from './NodeRegistry.js';
import { NodeSelector } from './NodeSelector.js';
import { OrphanReaper } from './OrphanReaper.js';
import { RedisNodeRegistry } from './RedisNodeRegistry.js';
import { RedisRoomStore } from './RedisRoomStore.js';
import type { RoomStore } from './RoomStore.js';
import { type RouteResult, RouteService, roomHostsOf } from './RouteService.js';

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
  try {
    await registry.start();
    await rooms.start();
  } catch (error) {
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
    async close() {
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
