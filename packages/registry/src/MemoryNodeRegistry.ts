import { InvalidStateError, type Logger, silentLogger, TypedEmitter } from '@geosfu/common';
import type { NodeRecord, NodeRecordInput, NodeUpdate } from './NodeRecord.js';
import {
  applyUpdate,
  initialRecord,
  MembershipView,
  type NodeDownReason,
  type NodeRegistry,
  type NodeRegistryEvents,
  type RegistryTimingOptions,
  resolveTiming,
} from './NodeRegistry.js';

type StoreEvents = {
  written: [record: NodeRecord];
  removed: [record: NodeRecord, reason: NodeDownReason];
};

/**
 * The in-memory stand-in for Redis: records with an expiry time. Expiry is lazy, as in
 * Redis: an expired entry is dropped when someone reads or sweeps, and every registry
 * sweeps on its heartbeat, so no timer belongs to the store.
 *
 * One store per process is the single-node mode; tests share one between several
 * registries to play a cluster.
 */
export class MemoryNodeStore {
  readonly #entries = new Map<string, { record: NodeRecord; expiresAt: number }>();
  readonly events = new TypedEmitter<StoreEvents>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** SET with TTL; returns whether the key existed (and was live) before. */
  set(record: NodeRecord, ttlMs: number): boolean {
    this.sweep();
    const existed = this.#entries.has(record.id);
    this.#entries.set(record.id, { record, expiresAt: this.#now() + ttlMs });
    this.events.safeEmit('written', record);
    return existed;
  }

  delete(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.events.safeEmit('removed', entry.record, 'deregistered');
  }

  get(id: string): NodeRecord | undefined {
    this.sweep();
    return this.#entries.get(id)?.record;
  }

  list(): NodeRecord[] {
    this.sweep();
    return [...this.#entries.values()].map((e) => e.record);
  }

  /** Drops expired entries, announcing each. */
  sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(id);
        this.events.safeEmit('removed', entry.record, 'expired');
      }
    }
  }
}

export interface MemoryNodeRegistryOptions extends RegistryTimingOptions {
  /** Share a store between registries of one process; default: a private one. */
  store?: MemoryNodeStore;
  logger?: Logger;
}

/**
 * The node registry without Redis, for single-node mode and tests: the same interface and
 * the same TTL semantics (a record that is not refreshed expires).
 */
export class MemoryNodeRegistry extends TypedEmitter<NodeRegistryEvents> implements NodeRegistry {
  readonly kind = 'memory';
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  readonly connected = true;
  readonly store: MemoryNodeStore;
  readonly #logger: Logger;
  readonly #view: MembershipView;
  #self: NodeRecord | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void)[] = [];
  #started = false;
  #closed = false;

  constructor(options: MemoryNodeRegistryOptions = {}) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'registry' });
    super((event, error) => logger.error({ err: error, event }, 'registry listener threw'));
    ({ ttlMs: this.ttlMs, heartbeatMs: this.heartbeatMs } = resolveTiming(options));
    this.store = options.store ?? new MemoryNodeStore();
    this.#logger = logger;
    this.#view = new MembershipView(this, logger);
  }

  get self(): NodeRecord | undefined {
    return this.#self;
  }

  async start(): Promise<void> {
    this.#assertOpen();
    if (this.#started) return;
    this.#started = true;
    const { events } = this.store;
    this.#unsubscribe.push(
      events.on('written', (record) => this.#view.upsert(record)),
      events.on('removed', (record, reason) => {
        if (record.id === this.#self?.id && reason === 'expired') {
          // Our own heartbeat was late by more than the TTL (a stalled event loop): write
          // the record again rather than vanish while alive.
          this.#logger.warn({ nodeId: record.id }, 'own record expired; writing it again');
          this.store.set(this.#self, this.ttlMs);
          return;
        }
        this.#view.remove(record.id, reason);
      }),
    );
    for (const record of this.store.list()) this.#view.upsert(record);
    this.#timer = setInterval(() => this.#tick(), this.heartbeatMs);
  }

  async register(input: NodeRecordInput): Promise<NodeRecord> {
    await this.start();
    if (this.#self) throw new InvalidStateError('already registered: use update()');
    const record = initialRecord(input, Date.now());
    this.#self = record;
    this.store.set(record, this.ttlMs);
    return record;
  }

  async update(patch: NodeUpdate): Promise<NodeRecord> {
    this.#assertOpen();
    if (!this.#self) throw new InvalidStateError('not registered: call register() first');
    this.#self = applyUpdate(this.#self, patch, Date.now());
    // Memory writes cost nothing, so every update is "immediate".
    this.store.set(this.#self, this.ttlMs);
    return this.#self;
  }

  async deregister(): Promise<void> {
    const self = this.#self;
    if (!self) return;
    this.#self = undefined;
    this.store.delete(self.id);
  }

  list(): readonly NodeRecord[] {
    this.store.sweep();
    return this.#view.list();
  }

  get(id: string): NodeRecord | undefined {
    this.store.sweep();
    return this.#view.get(id);
  }

  async refresh(): Promise<void> {
    this.#assertOpen();
    this.store.sweep();
  }

  async close(options: { deregister?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    if (options.deregister !== false) await this.deregister();
    this.#closed = true;
    this.#self = undefined;
    clearInterval(this.#timer);
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    this.#view.clear();
  }

  #tick(): void {
    if (this.#self) this.store.set(this.#self, this.ttlMs);
    this.store.sweep();
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the registry is closed');
  }
}
