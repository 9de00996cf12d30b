import {
  type GeoPoint,
  greatCircleDistanceKm,
  isValidGeoPoint,
  regionLocation,
  SfuError,
} from '@geosfu/common';
import type { NodeRecord } from './NodeRecord.js';

/** Why the selector picked the node it picked. */
export type SelectionReason =
  /** The nearest available node to the caller. */
  | 'nearest'
  /** A less loaded node within the nearby radius of the nearest one. */
  | 'least-loaded-nearby'
  /** The caller pinned a region. */
  | 'pinned-region'
  /** The caller pinned a node. */
  | 'pinned-node'
  /** The caller could not be located: nearest to the configured default region. */
  | 'default-region'
  /**
   * A node that already hosts the caller's room, instead of the nearest or least loaded
   * one among nodes equally near (room affinity: no relay between them).
   */
  | 'room-affinity';

export interface Selection {
  node: NodeRecord;
  /**
   * Great-circle distance from the caller (or, for an unlocated caller, from the default
   * region) to the node, km; null when neither is known.
   */
  distanceKm: number | null;
  reason: SelectionReason;
  /**
   * How many nodes the caller could equally have been given (the nearby ones; 1 for a pinned
   * node): room affinity can only change the answer when this is above 1.
   */
  choices: number;
}

export type NodePin = { region: string } | { nodeId: string };

export interface SelectRequest {
  /** Where the caller is (from GeoIP); undefined when unknown or private. */
  location?: GeoPoint | undefined;
  /** Pin a region or a node (experiments); needs `canPinRegion`. */
  pin?: NodePin | undefined;
  /** Whether the caller's token grants pinning. */
  canPinRegion?: boolean;
  /**
   * The nodes that host the caller's room now, node id to its participants there (room
   * affinity); undefined or empty: the room is new, or unknown.
   */
  roomHosts?: ReadonlyMap<string, number> | undefined;
}

export interface NodeSelectorOptions {
  /** Region whose location stands in for callers that cannot be located. */
  defaultRegion: string;
  /** Where the default region is, for a region that is not a preset. */
  defaultLocation?: GeoPoint | undefined;
  /** Radius around the nearest node within which load decides, km. Default 500. */
  nearbyRadiusKm?: number;
}

export const DEFAULT_NEARBY_RADIUS_KM = 500;

/** Anything that can list the nodes, such as a NodeRegistry. */
export interface NodeSource {
  list(): readonly NodeRecord[];
}

/** `participants/capacity`, the fullness of a node; a node with no capacity is full. */
function utilization(node: NodeRecord): number {
  return node.capacity > 0 ? node.load.participants / node.capacity : 1;
}

function isFull(node: NodeRecord): boolean {
  return node.load.participants >= node.capacity;
}

/**
 * Picks the node a caller should connect to: the nearest active node with spare capacity
 * by great-circle distance; among nodes within `nearbyRadiusKm` of that distance, the least
 * loaded (participants/capacity, then CPU) wins, so that Amsterdam and Frankfurt share the
 * load of western Europe instead of one of them filling up first.
 */
export class NodeSelector {
  readonly #source: NodeSource;
  readonly #defaultLocation: GeoPoint | undefined;
  readonly #defaultRegion: string;
  readonly #radiusKm: number;

  constructor(source: NodeSource, options: NodeSelectorOptions) {
    this.#source = source;
    this.#defaultRegion = options.defaultRegion;
    const location = options.defaultLocation ?? regionLocation(options.defaultRegion);
    if (location && !isValidGeoPoint(location)) {
      throw new SfuError(
        'CONFIG_INVALID',
        'the default location is not a valid latitude/longitude',
      );
    }
    this.#defaultLocation = location;
    const radius = options.nearbyRadiusKm ?? DEFAULT_NEARBY_RADIUS_KM;
    if (!Number.isFinite(radius) || radius < 0 || radius > 5_000) {
      throw new SfuError('CONFIG_INVALID', `nearbyRadiusKm ${radius} must be in 0..5000`);
    }
    this.#radiusKm = radius;
  }

  /**
   * Throws `SfuError('PERMISSION_DENIED')` for a pin without the grant and
   * `SfuError('NO_NODE_AVAILABLE')`, saying why, when nothing can take the caller.
   */
  select(request: SelectRequest = {}): Selection {
    return selectNode(this.#source.list(), request, {
      defaultRegion: this.#defaultRegion,
      defaultLocation: this.#defaultLocation,
      nearbyRadiusKm: this.#radiusKm,
    });
  }
}

/** The selection algorithm over a given list of nodes (see NodeSelector). */
export function selectNode(
  nodes: readonly NodeRecord[],
  request: SelectRequest,
  options: NodeSelectorOptions,
): Selection {
  const radiusKm = options.nearbyRadiusKm ?? DEFAULT_NEARBY_RADIUS_KM;
  const callerLocation =
    request.location && isValidGeoPoint(request.location) ? request.location : undefined;
  const origin = callerLocation ?? options.defaultLocation ?? regionLocation(options.defaultRegion);
  const distance = (node: NodeRecord) => (origin ? greatCircleDistanceKm(origin, node) : null);

  const pin = request.pin;
  if (pin) {
    if (request.canPinRegion !== true) {
      throw new SfuError(
        'PERMISSION_DENIED',
        'pinning a region or node needs a token with the canPinRegion grant',
      );
    }
    if ('nodeId' in pin) {
      const node = nodes.find((n) => n.id === pin.nodeId);
      if (!node) {
        throw new SfuError('NO_NODE_AVAILABLE', `pinned node ${pin.nodeId} is not registered`);
      }
      if (node.state === 'draining') {
        throw new SfuError('NO_NODE_AVAILABLE', `pinned node ${pin.nodeId} is draining`);
      }
      if (isFull(node)) {
        throw new SfuError(
          'NO_NODE_AVAILABLE',
          `pinned node ${pin.nodeId} is full (${node.load.participants}/${node.capacity} participants)`,
        );
      }
      return { node, distanceKm: distance(node), reason: 'pinned-node', choices: 1 };
    }
    const inRegion = nodes.filter((n) => n.region === pin.region);
    const available = inRegion.filter((n) => n.state === 'active' && !isFull(n));
    if (available.length === 0) {
      const draining = inRegion.filter((n) => n.state === 'draining').length;
      throw new SfuError(
        'NO_NODE_AVAILABLE',
        inRegion.length === 0
          ? `pinned region ${pin.region} has no registered node`
          : `pinned region ${pin.region} has no available node (${draining} draining, ${inRegion.length - draining} full)`,
      );
    }
    const { node, km, nearby } = pick(available, origin, radiusKm);
    const choices = nearby.length;
    const host = roomHost(nearby, request.roomHosts);
    return host && host.node !== node
      ? { node: host.node, distanceKm: origin ? host.km : null, reason: 'room-affinity', choices }
      : { node, distanceKm: km, reason: 'pinned-region', choices };
  }

  const available = nodes.filter((n) => n.state === 'active' && !isFull(n));
  if (available.length === 0) {
    const draining = nodes.filter((n) => n.state === 'draining').length;
    throw new SfuError(
      'NO_NODE_AVAILABLE',
      nodes.length === 0
        ? 'no node is registered'
        : `no node can take a participant (${nodes.length} registered: ${draining} draining, ${nodes.length - draining} full)`,
    );
  }
  const { node, km, nearest, nearby } = pick(available, origin, radiusKm);
  const choices = nearby.length;
  const host = roomHost(nearby, request.roomHosts);
  if (host && host.node !== node) {
    return {
      node: host.node,
      distanceKm: origin ? host.km : null,
      reason: 'room-affinity',
      choices,
    };
  }
  const reason: SelectionReason = !callerLocation
    ? 'default-region'
    : nearest
      ? 'nearest'
      : 'least-loaded-nearby';
  return { node, distanceKm: km, reason, choices };
}

interface Ranked {
  node: NodeRecord;
  km: number;
}

/**
 * Room affinity: among the nodes the caller may use equally (`nearby`: active, not full,
 * within the radius of the nearest, so the region chosen for them), the one that already
 * hosts the most of the room's participants (then the less loaded, then by id). Sending the
 * caller there saves a relay between two nodes of one region; a new room has no host.
 */
function roomHost(
  nearby: readonly Ranked[],
  hosts: ReadonlyMap<string, number> | undefined,
): Ranked | undefined {
  if (!hosts || hosts.size === 0) return undefined;
  const here = (r: Ranked) => hosts.get(r.node.id) ?? 0;
  const hosting = nearby.filter((r) => here(r) > 0);
  if (hosting.length === 0) return undefined;
  return hosting.reduce((a, b) =>
    here(b) > here(a) || (here(b) === here(a) && compareLoad(b.node, a.node) < 0) ? b : a,
  );
}

/**
 * Nearest node, or the least loaded within the radius of the nearest's distance. One pass
 * for the distances and the nearest; only the few nodes within the radius are sorted (by
 * distance, then id), which is the order ties are broken in.
 */
function pick(
  available: readonly NodeRecord[],
  origin: GeoPoint | undefined,
  radiusKm: number,
): { node: NodeRecord; km: number | null; nearest: boolean; nearby: Ranked[] } {
  const ranked: Ranked[] = new Array(available.length);
  let first: Ranked | undefined;
  for (let i = 0; i < available.length; i++) {
    const node = available[i] as NodeRecord;
    const r = { node, km: origin ? greatCircleDistanceKm(origin, node) : 0 };
    ranked[i] = r;
    if (!first || r.km < first.km || (r.km === first.km && compareIds(node, first.node) < 0))
      first = r;
  }
  const nearest = first as Ranked;
  // Without any location every node is "nearby": load alone decides.
  const limit = nearest.km + radiusKm;
  const nearby = ranked
    .filter((r) => r.km <= limit)
    .sort((a, b) => a.km - b.km || compareIds(a.node, b.node));
  const best = nearby.reduce((a, b) => (compareLoad(b.node, a.node) < 0 ? b : a));
  return {
    node: best.node,
    km: origin ? best.km : null,
    nearest: best === nearest || best.km === nearest.km,
    nearby,
  };
}

function compareLoad(a: NodeRecord, b: NodeRecord): number {
  return utilization(a) - utilization(b) || a.load.cpu - b.load.cpu;
}

function compareIds(a: NodeRecord, b: NodeRecord): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
