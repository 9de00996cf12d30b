import { SfuError } from '@geosfu/common';
import { z } from 'zod';

/** Same rule as the node's `SFU_NODE_ID`: it goes into Redis key names and URLs. */
const nodeId = z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/, 'letters, digits, dot, dash, underscore');
const httpUrl = z.url({ protocol: /^https?$/, error: 'an http(s) URL' });
const signalUrl = z.url({ protocol: /^(wss?|https?)$/, error: 'a ws(s) or http(s) URL' });
const count = z.number().int().min(0);

/** What a node reports about its load on every heartbeat. */
export const NodeLoad = z.object({
  participants: count,
  publishedTracks: count,
  /** Process CPU use, 0..1 of one core's worth of the machine's cores. */
  cpu: z.number().min(0).max(1),
  /** Media the node forwards, bit/s (client and relay paths together). */
  forwardedBitrate: z.number().min(0),
});
export type NodeLoad = z.infer<typeof NodeLoad>;

export const NodeState = z.enum(['active', 'draining']);
/** `draining`: the node keeps its sessions but takes no new ones (maintenance, shutdown). */
export type NodeState = z.infer<typeof NodeState>;

/**
 * One node as the registry stores it. Unknown fields are dropped on parse, so a newer node
 * can add fields during a rolling upgrade without older nodes rejecting its record.
 */
export const NodeRecord = z.object({
  id: nodeId,
  region: z.string().regex(/^[a-z0-9-]{1,32}$/, 'lowercase letters, digits, dash'),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  /** Public HTTP base URL of the node (API, metrics). */
  url: httpUrl,
  /** Where clients open the signalling websocket. */
  signalUrl,
  state: NodeState,
  /** Maximum participants the node accepts; a node at capacity is "full". */
  capacity: count,
  load: NodeLoad,
  /** Software version, for mixed-version clusters during upgrades. */
  version: z.string().min(1).max(64),
  /** Epoch ms. */
  startedAt: count,
  /** Epoch ms of the last write by the node itself (its clock, not the reader's). */
  updatedAt: count,
});
export type NodeRecord = z.infer<typeof NodeRecord>;

/** What a node passes to `register()`: the registry stamps `updatedAt` itself. */
export type NodeRecordInput = Omit<NodeRecord, 'updatedAt'> & { updatedAt?: number };

/** What `update()` may change while a node is registered. */
export interface NodeUpdate {
  state?: NodeState;
  capacity?: number;
  load?: Partial<NodeLoad>;
}

/**
 * Parses a record that came from outside this process (Redis, pub/sub). Throws
 * `SfuError('BAD_MESSAGE')` naming the first bad field; the result is deeply frozen.
 */
export function parseNodeRecord(raw: unknown): NodeRecord {
  const result = NodeRecord.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new SfuError(
      'BAD_MESSAGE',
      `invalid node record: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  return freezeRecord(result.data);
}

export function freezeRecord(record: NodeRecord): NodeRecord {
  Object.freeze(record.load);
  return Object.freeze(record);
}

/** True when two records differ in anything but `updatedAt` (the heartbeat's timestamp). */
export function recordChanged(a: NodeRecord, b: NodeRecord): boolean {
  return (
    a.id !== b.id ||
    a.region !== b.region ||
    a.latitude !== b.latitude ||
    a.longitude !== b.longitude ||
    a.url !== b.url ||
    a.signalUrl !== b.signalUrl ||
    a.state !== b.state ||
    a.capacity !== b.capacity ||
    a.version !== b.version ||
    a.startedAt !== b.startedAt ||
    a.load.participants !== b.load.participants ||
    a.load.publishedTracks !== b.load.publishedTracks ||
    a.load.cpu !== b.load.cpu ||
    a.load.forwardedBitrate !== b.load.forwardedBitrate
  );
}
