import { type Logger, silentLogger, TypedEmitter } from '@geosfu/common';
import type { NodeRegistry } from './NodeRegistry.js';
import type { RoomStore } from './RoomStore.js';

export interface OrphanReaperOptions {
  registry: NodeRegistry;
  rooms: RoomStore;
  /** This node: its own sessions are never orphans. */
  nodeId: string;
  /**
   * How long a node must stay missing from the registry before its sessions are removed.
   * Default two registry TTLs: longer than a record takes to appear (a node that is just
   * registering) and than the registry's own grace after a Redis restart.
   */
  graceMs?: number;
  /** How often the watched rooms are checked; default one heartbeat. */
  intervalMs?: number;
  logger?: Logger;
}

export type OrphanReaperEvents = {
  /** Sessions of nodes missing from the registry were removed (`left`, `node-died`). */
  reaped: [sessions: number];
};

/**
 * Removes the sessions, in the rooms this node watches, of nodes that have no (valid)
 * registry record. A dead node's sessions are normally reaped when its record expires
 * (`reapNode`), but that needs a survivor to see the expiry: when every node was down at
 * the time, or the sessions were written for a node that never existed, nothing reaped them
 * and they counted toward the room limit forever (100 of them made every join ROOM_FULL).
 *
 * A node counts as missing from the first sweep that finds one of its sessions while the
 * registry has no record of it; its sessions go once it has been missing for `graceMs`
 * without a break, under the room's lock, each with a `left` (reason `node-died`, origin
 * REAP_ORIGIN), as for a reaped node. One survivor's removal makes the others' no-ops.
 */
export class OrphanReaper extends TypedEmitter<OrphanReaperEvents> {
  readonly graceMs: number;
  readonly intervalMs: number;
  readonly #registry: NodeRegistry;
  readonly #rooms: RoomStore;
  readonly #nodeId: string;
  readonly #logger: Logger;
  /** Node id -> when a sweep first found its sessions without a registry record. */
  readonly #missingSince = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #closed = false;

  constructor(options: OrphanReaperOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'orphan-reaper' });
    super((event, error) => logger.error({ err: error, event }, 'orphan reaper listener threw'));
    this.#logger = logger;
    this.#registry = options.registry;
    this.#rooms = options.rooms;
    this.#nodeId = options.nodeId;
    this.graceMs = options.graceMs ?? 2 * options.registry.ttlMs;
    this.intervalMs = options.intervalMs ?? options.registry.heartbeatMs;
  }

  start(): void {
    if (this.#closed || this.#timer !== undefined || this.#sweeping !== undefined) return;
    this.#schedule();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
    this.#missingSince.clear();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#sweeping = this.#sweep()
        .catch((error: unknown) => this.#logger.error({ err: error }, 'orphan sweep failed'))
        .finally(() => {
          this.#sweeping = undefined;
          this.#schedule();
        });
    }, this.intervalMs);
  }

  async #sweep(): Promise<void> {
    const now = Date.now();
    const seen = new Set<string>();
    const due: string[] = [];
    for (const room of this.#rooms.watchedRooms()) {
      if (this.#closed) return;
      let nodes: Set<string>;
      try {
        nodes = new Set((await this.#rooms.participants(room)).map((s) => s.nodeId));
      } catch {
        // Redis away (the store counts and logs it): nothing is reaped until it is back.
        return;
      }
      let overdue = false;
      for (const node of nodes) {
        if (!this.#missing(node)) continue;
        seen.add(node);
        if (!this.#missingSince.has(node)) this.#missingSince.set(node, now);
        overdue ||= this.#overdue(node, now);
      }
      if (overdue) due.push(room);
    }
    // A node that is back in the registry, or has no session left, starts from zero again.
    for (const node of this.#missingSince.keys()) {
      if (!seen.has(node)) this.#missingSince.delete(node);
    }
    for (const room of due) {
      if (this.#closed) return;
      try {
        // Decided again under the room's lock, against the registry as it is then.
        const removed = await this.#rooms.reapOrphans(room, (node) =>
          this.#overdue(node, Date.now()),
        );
        if (removed > 0) {
          this.#logger.info({ room, sessions: removed }, 'removed sessions of unregistered nodes');
          this.safeEmit('reaped', removed);
        }
      } catch (error) {
        this.#logger.warn({ err: error, room }, 'could not remove orphaned sessions');
      }
    }
  }

  #missing(node: string): boolean {
    return node !== this.#nodeId && this.#registry.get(node) === undefined;
  }

  #overdue(node: string, now: number): boolean {
    const since = this.#missingSince.get(node);
    return this.#missing(node) && since !== undefined && now - since >= this.graceMs;
  }
}
