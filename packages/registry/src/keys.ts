import { SfuError } from '@geosfu/common';

/** Default prefix of every Redis key and channel this project writes. */
export const DEFAULT_KEY_PREFIX = 'sfu:';

// Restricted so that the prefix never needs escaping in a SCAN MATCH glob.
const PREFIX_PATTERN = /^[A-Za-z0-9:_.-]{0,64}$/;

/**
 * Every Redis key and channel name of the node registry, in one place. The prefix lets
 * several clusters (or several test suites) share one Redis server.
 */
export interface RegistryKeys {
  readonly prefix: string;
  /** String key holding one node's JSON record, with a TTL: `sfu:node:{id}`. */
  node(id: string): string;
  /** SCAN MATCH pattern for every node key. */
  readonly nodePattern: string;
  /** The node id of a node key, or undefined for any other key. */
  nodeIdOf(key: string): string | undefined;
  /** Pub/sub channel of membership changes (register, deregister, state change). */
  readonly nodesChannel: string;
  /** Keyspace-notification channel of expired keys in database `db`. */
  expiredChannel(db: number): string;
  /** Hash of a room's sessions, sessionId -> JSON SessionRecord: `sfu:room:{room}:sessions`. */
  roomSessions(room: string): string;
  /** Pub/sub channel of a room's events (RoomEvent JSON): `sfu:room:{room}:events`. */
  roomChannel(room: string): string;
  /** Set of the rooms a node has (or may have) sessions in, for reaping: `sfu:noderooms:{id}`. */
  nodeRooms(nodeId: string): string;
  /** The lock every mutation of a room takes: `sfu:lock:room:{room}`. */
  roomLock(room: string): string;
  /** The lock of the one survivor that reaps a dead node: `sfu:lock:reap:{id}`. */
  reapLock(nodeId: string): string;
}

export function registryKeys(prefix: string = DEFAULT_KEY_PREFIX): RegistryKeys {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new SfuError(
      'CONFIG_INVALID',
      `Redis key prefix ${JSON.stringify(prefix)} is invalid: use at most 64 letters, digits, ":", "_", ".", "-"`,
    );
  }
  const nodePrefix = `${prefix}node:`;
  return Object.freeze({
    prefix,
    node: (id: string) => `${nodePrefix}${id}`,
    nodePattern: `${nodePrefix}*`,
    nodeIdOf: (key: string) =>
      key.startsWith(nodePrefix) && key.length > nodePrefix.length
        ? key.slice(nodePrefix.length)
        : undefined,
    nodesChannel: `${prefix}nodes`,
    expiredChannel: (db: number) => `__keyevent@${db}__:expired`,
    // `noderooms:` never matches `nodePattern` (`node:*`): the colon comes right after "node".
    roomSessions: (room: string) => `${prefix}room:${room}:sessions`,
    roomChannel: (room: string) => `${prefix}room:${room}:events`,
    nodeRooms: (nodeId: string) => `${prefix}noderooms:${nodeId}`,
    roomLock: (room: string) => `${prefix}lock:room:${room}`,
    reapLock: (nodeId: string) => `${prefix}lock:reap:${nodeId}`,
  });
}
