import type { Logger } from '@geosfu/common';
import type { ControlPlane } from '@geosfu/registry';
import type { NodeMetrics } from './metrics.js';

/**
 * What a node does with the control plane's own events: counts its Redis errors, round
 * trips, rejected cluster state and orphaned sessions removed, and, as a survivor, reaps
 * the sessions of a node whose record expired (the store lets one survivor do it).
 */
export function observeControlPlane(
  plane: ControlPlane,
  metrics: NodeMetrics,
  nodeId: string,
  logger: Logger,
): void {
  const { registry, rooms } = plane;
  // The connection's own failures (connect, subscriber, probe, resubscribe); its users
  // count the failures of their commands.
  plane.redis?.on('redisError', (op) => metrics.redisErrors.inc({ op }));
  plane.redis?.on('failover', () => metrics.redisFailovers.inc());
  registry.on('redisError', (op) => metrics.redisErrors.inc({ op }));
  registry.on('redisRoundTrip', (ms) => metrics.redisRoundTrip.observe(ms / 1000));
  rooms.on('redisError', (op) => metrics.redisErrors.inc({ op }));
  rooms.on('roundTrips', (op, trips) => metrics.roomRoundTrips.observe({ op }, trips));
  registry.on('rejected', (kind, reason) => metrics.clusterRejected.inc({ kind, reason }));
  rooms.on('rejected', (kind, reason) => metrics.clusterRejected.inc({ kind, reason }));
  plane.orphans?.on('reaped', (n) => metrics.orphansReaped.inc(n));
  plane.commands?.on('rejected', (reason) => metrics.roomCommandsRejected.inc({ reason }));
  plane.webhooks?.on('attempt', (result) => metrics.webhookDeliveries.inc({ result }));
  registry.on('nodeDown', (node, reason) => {
    // 'expired' is only believed once the record is really gone (RedisNodeRegistry).
    if (reason !== 'expired' || node.id === nodeId) return;
    rooms.reapNode(node.id).then(
      (n) =>
        n > 0 && logger.info({ node: node.id, sessions: n }, 'reaped the sessions of a dead node'),
      (error: unknown) => logger.warn({ err: error, node: node.id }, 'reaping failed'),
    );
  });
}
