import {
  type ClusterRejectKind,
  type ClusterRejectReason,
  type Logger,
  SfuError,
  type TypedEmitter,
} from '@geosfu/common';
import {
  freezeRecord,
  type NodeRecord,
  type NodeRecordInput,
  type NodeUpdate,
  parseNodeRecord,
  recordChanged,
} from './NodeRecord.js';

/**
 * Why a node left the view: it said goodbye (`deregistered`), its record expired or
 * vanished without one (`expired`: crash, network partition), or a process with the same id
 * and a later start time took its place (`replaced`: a restart faster than the TTL).
 */
export type NodeDownReason = 'deregistered' | 'expired' | 'replaced';

export type NodeRegistryEvents = {
  /** A node joined the view (including this process's own node on `register()`). */
  nodeUp: [node: NodeRecord];
  nodeDown: [node: NodeRecord, reason: NodeDownReason];
  /** A node's state, capacity or load changed (not emitted for a bare heartbeat). */
  nodeUpdated: [node: NodeRecord, previous: NodeRecord];
  /**
   * A Redis command or connection failed and was recovered from (`op`: `connect`,
   * `heartbeat`, `reconcile`, `publish`, ...). For metrics; it is also logged.
   */
  redisError: [op: string, error: Error];
  /** How long a heartbeat's write to Redis took (the control plane's round trip), ms. */
  redisRoundTrip: [ms: number];
  /**
   * A node record, membership message or expiry notification that did not verify (for
   * `sfu_cluster_messages_rejected_total`); it changed nothing. Never from the memory one.
   */
  rejected: [kind: ClusterRejectKind, reason: ClusterRejectReason];
};

/**
 * The cluster's membership as this process sees it, and this process's own entry in it.
 *
 * `list()` and `get()` answer from a local view kept current by events (and, for Redis, a
 * periodic reconcile), so they never wait on the network and keep the last known answer
 * while Redis is away.
 */
export interface NodeRegistry
  extends Pick<TypedEmitter<NodeRegistryEvents>, 'on' | 'once' | 'off' | 'waitFor'> {
  readonly kind: 'redis' | 'memory';
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  /** This process's record after `register()`, undefined before and after `deregister()`. */
  readonly self: NodeRecord | undefined;
  /** False while the backing store is unreachable (never for the memory registry). */
  readonly connected: boolean;
  /** Connects and loads the current membership. Idempotent; `register()` calls it. */
  start(): Promise<void>;
  /** Writes this node's record and keeps it alive on a heartbeat. Once per instance. */
  register(record: NodeRecordInput): Promise<NodeRecord>;
  /**
   * Changes this node's state, capacity or load. A state or capacity change is written and
   * announced at once; a load change goes out with the next heartbeat unless `immediate`.
   */
  update(patch: NodeUpdate, options?: { immediate?: boolean }): Promise<NodeRecord>;
  /** Deletes this node's record at once and stops the heartbeat. */
  deregister(): Promise<void>;
  /** Every known node, sorted by id, including this one. */
  list(): readonly NodeRecord[];
  get(id: string): NodeRecord | undefined;
  /** Re-reads the whole membership now (normally done every heartbeat). */
  refresh(): Promise<void>;
  /**
   * Stops timers and subscriptions and closes connections. Deregisters first unless
   * `deregister: false` (which leaves the record to expire, as a crash would). Idempotent.
   */
  close(options?: { deregister?: boolean }): Promise<void>;
}

/** Record TTL when none is given. */
export const DEFAULT_TTL_MS = 10_000;
/** Heartbeat period when none is given. */
export const DEFAULT_HEARTBEAT_MS = 3_000;
/** Bounds of the TTL: below 2 s a GC pause expires a live node; above 2 min a dead one lingers. */
export const MIN_TTL_MS = 2_000;
export const MAX_TTL_MS = 120_000;
/** Faster heartbeats buy nothing but Redis load. */
export const MIN_HEARTBEAT_MS = 250;

export interface RegistryTimingOptions {
  /** Record TTL, ms. Default 10 000; 2 000..120 000. */
  ttlMs?: number;
  /** Heartbeat (and reconcile) period, ms. Default 3 000; at least 250, less than TTL/2. */
  heartbeatMs?: number;
}

/**
 * Validates TTL and heartbeat together. The heartbeat must fit twice into the TTL so that
 * one lost or late heartbeat does not expire a live node.
 */
export function resolveTiming(options: RegistryTimingOptions): {
  ttlMs: number;
  heartbeatMs: number;
} {
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const problems: string[] = [];
  if (!Number.isInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    problems.push(`ttlMs ${ttlMs} must be an integer in ${MIN_TTL_MS}..${MAX_TTL_MS}`);
  }
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < MIN_HEARTBEAT_MS) {
    problems.push(`heartbeatMs ${heartbeatMs} must be an integer of at least ${MIN_HEARTBEAT_MS}`);
  } else if (heartbeatMs * 2 >= ttlMs) {
    problems.push(
      `heartbeatMs ${heartbeatMs} must be less than half of ttlMs ${ttlMs}, or one late heartbeat expires a live node`,
    );
  }
  if (problems.length > 0) {
    throw new SfuError('CONFIG_INVALID', `invalid registry timing: ${problems.join('; ')}`);
  }
  return { ttlMs, heartbeatMs };
}

/** Builds this node's full record from what `register()` got, validating it. */
export function initialRecord(input: NodeRecordInput, now: number): NodeRecord {
  try {
    return parseNodeRecord({ ...input, updatedAt: now });
  } catch (error) {
    throw new SfuError('INVALID_ARGUMENT', (error as Error).message, { cause: error });
  }
}

/** Applies an `update()` patch to a record, validating the result. */
export function applyUpdate(record: NodeRecord, patch: NodeUpdate, now: number): NodeRecord {
  const next = {
    ...record,
    ...(patch.state === undefined ? {} : { state: patch.state }),
    ...(patch.capacity === undefined ? {} : { capacity: patch.capacity }),
    load: { ...record.load, ...stripUndefined(patch.load ?? {}) },
    updatedAt: Math.max(now, record.updatedAt),
  };
  try {
    return parseNodeRecord(next);
  } catch (error) {
    throw new SfuError('INVALID_ARGUMENT', (error as Error).message, { cause: error });
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The local view of the membership, shared by the implementations: it turns "here is what
 * I now know about node X" into exactly one event per real change.
 */
export class MembershipView {
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #emitter: TypedEmitter<NodeRegistryEvents>;
  readonly #logger: Logger;

  constructor(emitter: TypedEmitter<NodeRegistryEvents>, logger: Logger) {
    this.#emitter = emitter;
    this.#logger = logger;
  }

  get size(): number {
    return this.#nodes.size;
  }

  get(id: string): NodeRecord | undefined {
    return this.#nodes.get(id);
  }

  ids(): string[] {
    return [...this.#nodes.keys()];
  }

  list(): NodeRecord[] {
    return [...this.#nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  upsert(record: NodeRecord): void {
    const frozen = Object.isFrozen(record) ? record : freezeRecord({ ...record });
    const previous = this.#nodes.get(record.id);
    if (previous && previous.startedAt !== frozen.startedAt) {
      if (frozen.startedAt < previous.startedAt) return; // an older process's late write
      this.#logger.info({ nodeId: record.id }, 'node restarted under the same id');
      this.#nodes.delete(record.id);
      this.#emitter.safeEmit('nodeDown', previous, 'replaced');
      this.#nodes.set(record.id, frozen);
      this.#emitter.safeEmit('nodeUp', frozen);
      return;
    }
    if (previous && frozen.updatedAt < previous.updatedAt) return; // stale copy
    this.#nodes.set(record.id, frozen);
    if (!previous) {
      this.#logger.debug({ nodeId: record.id, region: record.region }, 'node up');
      this.#emitter.safeEmit('nodeUp', frozen);
    } else if (recordChanged(previous, frozen)) {
      this.#emitter.safeEmit('nodeUpdated', frozen, previous);
    }
  }

  remove(id: string, reason: NodeDownReason): void {
    const previous = this.#nodes.get(id);
    if (!previous) return;
    this.#nodes.delete(id);
    this.#logger.debug({ nodeId: id, reason }, 'node down');
    this.#emitter.safeEmit('nodeDown', previous, reason);
  }

  clear(): void {
    this.#nodes.clear();
  }
}
