import {
  type ClusterRejectKind,
  InvalidStateError,
  Lifecycle,
  type Logger,
  type RedisConnection,
  SfuError,
  silentLogger,
  TaskTimer,
  TypedEmitter,
} from '@geosfu/common';
import { DEFAULT_KEY_PREFIX, type RegistryKeys, registryKeys } from './keys.js';
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
import { RejectionLog } from './RejectionLog.js';
import { type MembershipMessage, SignedNodeState } from './SignedNodeState.js';

export interface RedisNodeRegistryOptions extends RegistryTimingOptions {
  /** The process's Redis connection (started by the registry if needed, closed by its owner). */
  redis: RedisConnection;
  /** Prefix of every key and channel; default `sfu:`. Tests use one per suite. */
  keyPrefix?: string;
  /** SFU_CLUSTER_SECRET: signs node records and membership messages (SignedNodeState). */
  secret: string;
  logger?: Logger;
}

/** How many keys one SCAN step and one MGET ask for. */
const SCAN_COUNT = 200;

/** Remember at most this many keys with an invalid record (each is counted once). */
const MAX_BAD_KEYS = 1_000;

/**
 * The node registry on Redis.
 *
 * - Each node's record is a string key `{prefix}node:{id}` with a TTL, rewritten whole
 *   (SET ... PX ttl) on every heartbeat, so a Redis that restarted empty gets it back on
 *   the next beat, and a node that dies disappears on its own.
 * - Changes are announced on `{prefix}nodes` (register, deregister, state change) and
 *   expiries come from keyspace notifications when the server allows enabling them.
 * - Every heartbeat also SCANs the prefix and reconciles the view: the safety net for lost
 *   messages, refused keyspace notifications and reconnects. A SIGKILLed node therefore
 *   leaves every view within TTL + one heartbeat at worst.
 * - Redis errors never throw out of the background work: they are counted (`redisError`),
 *   logged, and the last known view is kept. The connection (`RedisConnection`) subscribes
 *   the channels again and sets the notification flags again after an outage; on its `up`
 *   the registry writes its record and re-reads everything.
 */
export class RedisNodeRegistry extends TypedEmitter<NodeRegistryEvents> implements NodeRegistry {
  readonly kind = 'redis';
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  readonly keys: RegistryKeys;
  readonly #logger: Logger;
  readonly #view: MembershipView;
  readonly #redis: RedisConnection;
  readonly #db: number;
  readonly #redisLabel: string;
  readonly #channels: string[];
  readonly #unlisten: (() => void)[] = [];

  /** This node's record; load changes made by update() go out with the next heartbeat. */
  #self: NodeRecord | undefined;
  /**
   * Our node id from register() on, kept after deregister(): our own published messages
   * and a SCAN that raced our DEL can arrive after it and must not bring us back.
   */
  #ownId: string | undefined;
  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  readonly #life = new Lifecycle('the registry', () => this.#start());
  /** The heartbeat: writes our record and reconciles the view. */
  readonly #ticker = new TaskTimer(() => this.#tick());
  #tickAgain = false;
  #reconcileChain: Promise<void> = Promise.resolve();
  /** Bumped on every pub/sub event; see #reconcile for why. */
  #seq = 0;
  readonly #touched = new Map<string, number>();
  /** Until then, a node missing from SCAN is not removed (Redis just came back empty). */
  #graceUntil = 0;
  #degraded = false;
  /**
   * Key -> the invalid value last counted there: a record that does not verify is counted
   * (and logged) once, not on every reconcile; a new forgery at the same key counts again.
   */
  readonly #badKeys = new Map<string, string>();
  readonly #signed: SignedNodeState;
  readonly #rejections: RejectionLog;

  constructor(options: RedisNodeRegistryOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'registry' });
    super((event, error) => logger.error({ err: error, event }, 'registry listener threw'));
    ({ ttlMs: this.ttlMs, heartbeatMs: this.heartbeatMs } = resolveTiming(options));
    this.keys = registryKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.#logger = logger;
    this.#view = new MembershipView(this, logger);
    this.#redis = options.redis;
    this.#redisLabel = options.redis.label;
    this.#db = options.redis.db;
    this.#channels = [this.keys.nodesChannel, this.keys.expiredChannel(this.#db)];
    this.#signed = new SignedNodeState(options.secret, this.keys, this.ttlMs);
    this.#rejections = new RejectionLog(logger, (kind, reason) =>
      this.safeEmit('rejected', kind, reason),
    );

    this.#unlisten.push(this.#redis.on('up', (info) => this.#onUp(info.reconnected)));
  }

  get self(): NodeRecord | undefined {
    return this.#self;
  }

  get connected(): boolean {
    return this.#redis.connected;
  }

  start(): Promise<void> {
    return this.#life.start();
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    try {
      await this.#redis.start();
      // Expired-key events (`E` + `x`). Managed Redis services often refuse CONFIG: then
      // the reconcile alone notices expiry.
      await this.#redis.requireKeyspaceEvents(
        'Ex',
        `node expiry is noticed by the reconcile within TTL + ${this.heartbeatMs} ms`,
      );
      for (const channel of this.#channels) await this.#redis.subscribe(channel, this.#onMessage);
      await this.#reconcile(true);
    } catch (error) {
      await this.#unsubscribe();
      this.#state = 'new';
      if (error instanceof SfuError) throw error;
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot use Redis at ${this.#redisLabel}: ${(error as Error).message}; check REDIS_URL (or leave it unset for single-node mode)`,
        { cause: error },
      );
    }
    if (this.#state !== 'starting') return; // closed meanwhile
    this.#state = 'running';
    this.#logger.info(
      { redis: this.#redisLabel, prefix: this.keys.prefix, nodes: this.#view.size },
      'node registry connected',
    );
    this.#schedule(this.heartbeatMs);
  }

  async register(input: NodeRecordInput): Promise<NodeRecord> {
    await this.start();
    this.#assertOpen();
    if (this.#self) throw new InvalidStateError('already registered: use update()');
    const record = initialRecord(input, Date.now());
    try {
      await this.#redis.command.set(
        this.keys.node(record.id),
        this.#signed.sealRecord(record),
        'PX',
        this.ttlMs,
      );
    } catch (error) {
      this.#redisError('register', error);
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot register node ${record.id} in Redis at ${this.#redisLabel}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.#self = record;
    this.#ownId = record.id;
    this.#view.upsert(record);
    await this.#publish({ type: 'up', node: record });
    this.#logger.info({ nodeId: record.id, region: record.region }, 'node registered');
    return record;
  }

  async update(patch: NodeUpdate, options: { immediate?: boolean } = {}): Promise<NodeRecord> {
    this.#assertOpen();
    const current = this.#self;
    if (!current) throw new InvalidStateError('not registered: call register() first');
    const next = applyUpdate(current, patch, Date.now());
    this.#self = next;
    this.#view.upsert(next);
    const announce = next.state !== current.state || next.capacity !== current.capacity;
    if (announce || options.immediate) {
      await this.#writeSelf('update');
      if (announce) await this.#publish({ type: 'update', node: next });
    }
    return next;
  }

  async deregister(): Promise<void> {
    const self = this.#self;
    if (!self) return;
    this.#self = undefined;
    this.#view.remove(self.id, 'deregistered');
    try {
      await this.#redis.command.del(this.keys.node(self.id));
    } catch (error) {
      // The record still expires within the TTL; nothing else to do.
      this.#redisError('deregister', error);
    }
    await this.#publish({ type: 'down', id: self.id });
    this.#logger.info({ nodeId: self.id }, 'node deregistered');
  }

  list(): readonly NodeRecord[] {
    return this.#view.list();
  }

  get(id: string): NodeRecord | undefined {
    return this.#view.get(id);
  }

  async refresh(): Promise<void> {
    this.#assertOpen();
    await this.start();
    await this.#runReconcile();
  }

  close(options: { deregister?: boolean } = {}): Promise<void> {
    const deregister = options.deregister ?? true;
    return this.#life.close(() => this.#close(deregister));
  }

  async #close(deregister: boolean): Promise<void> {
    if (deregister) await this.deregister();
    this.#state = 'closed';
    this.#self = undefined;
    await this.#ticker.stop();
    await this.#reconcileChain;
    for (const off of this.#unlisten.splice(0)) off();
    await this.#unsubscribe();
    this.#view.clear();
    this.#touched.clear();
    this.#logger.debug('node registry closed');
  }

  // ---- heartbeat and reconcile -------------------------------------------------------

  #schedule(delayMs: number): void {
    if (this.#state !== 'running') return;
    this.#ticker.schedule(delayMs);
  }

  /** Runs a heartbeat and reconcile now (after a reconnect, or on our own expiry). */
  #tickSoon(): void {
    if (this.#ticker.running) this.#tickAgain = true;
    else this.#schedule(0);
  }

  async #tick(): Promise<void> {
    const started = Date.now();
    this.#tickAgain = false;
    try {
      await this.#heartbeat();
      await this.#runReconcile();
    } catch (error) {
      // Both catch their Redis errors; this is a bug, and the heartbeat must go on anyway.
      this.#logger.error({ err: error }, 'registry tick failed');
    } finally {
      const elapsed = Date.now() - started;
      this.#schedule(this.#tickAgain ? 0 : Math.max(0, this.heartbeatMs - elapsed));
    }
  }

  async #heartbeat(): Promise<void> {
    const self = this.#self;
    if (!self) return;
    // Stamp the time of this write: readers use it to order copies of the record.
    const record = applyUpdate(self, {}, Date.now());
    this.#self = record;
    let previous: string | null;
    const sent = performance.now();
    try {
      // SET (not EXPIRE): a Redis that restarted empty gets the whole record back. GET
      // tells us whether it was gone, in which case the others hear of it now.
      previous = await this.#redis.command.set(
        this.keys.node(record.id),
        this.#signed.sealRecord(record),
        'PX',
        this.ttlMs,
        'GET',
      );
    } catch (error) {
      this.#redisError('heartbeat', error);
      return;
    }
    this.safeEmit('redisRoundTrip', performance.now() - sent);
    if (previous === null && this.#self?.id === record.id) {
      this.#logger.warn(
        { nodeId: record.id },
        'own record was gone (Redis restarted, or a heartbeat was late by more than the TTL): registered again',
      );
      await this.#publish({ type: 'up', node: record });
    }
  }

  async #writeSelf(op: string): Promise<void> {
    const self = this.#self;
    if (!self) return;
    try {
      const value = this.#signed.sealRecord(self);
      await this.#redis.command.set(this.keys.node(self.id), value, 'PX', this.ttlMs);
    } catch (error) {
      // The next heartbeat writes it.
      this.#redisError(op, error);
    }
  }

  #runReconcile(): Promise<void> {
    // One reconcile at a time: they share the #touched bookkeeping.
    this.#reconcileChain = this.#reconcileChain
      .then(() => this.#reconcile(false))
      .catch((error: unknown) => {
        // #reconcile handles Redis errors itself; anything else is a bug to log, and the
        // chain must stay usable for the next one.
        this.#logger.error({ err: error }, 'reconcile failed');
      });
    return this.#reconcileChain;
  }

  /**
   * Reads every node record (SCAN + MGET) and makes the view match.
   *
   * A pub/sub event can arrive while the SCAN is in flight: a "down" for node X, then our
   * stale SCAN result that still holds X would bring X back. So every event stamps its node
   * with a sequence number, and the reconcile leaves alone any node touched after it began.
   */
  async #reconcile(throwOnError: boolean): Promise<void> {
    const startSeq = this.#seq;
    const found = new Map<string, NodeRecord>();
    try {
      const keys = new Set<string>();
      let cursor = '0';
      do {
        const [next, batch] = await this.#redis.command.scan(
          cursor,
          'MATCH',
          this.keys.nodePattern,
          'COUNT',
          SCAN_COUNT,
        );
        cursor = next;
        for (const key of batch) keys.add(key);
      } while (cursor !== '0');
      const list = [...keys];
      for (let i = 0; i < list.length; i += SCAN_COUNT) {
        const chunk = list.slice(i, i + SCAN_COUNT);
        const values = await this.#redis.command.mget(...chunk);
        chunk.forEach((key, j) => {
          const value = values[j];
          if (value === null || value === undefined) return; // expired between SCAN and MGET
          const record = this.#parseStored(key, value);
          if (record) found.set(record.id, record);
        });
      }
    } catch (error) {
      if (throwOnError) throw error;
      this.#redisError('reconcile', error);
      return; // keep the last known view
    }
    if (this.#state === 'closed') return;
    if (this.#degraded) {
      // Errors without a disconnect (timeouts of a hung server) end here, not in #onReady.
      this.#degraded = false;
      this.#logger.info({ redis: this.#redisLabel }, 'Redis answering again');
    }
    const touchedSince = (id: string) => (this.#touched.get(id) ?? -1) >= startSeq;
    const selfId = this.#ownId;
    for (const [id, record] of found) {
      if (id === selfId) {
        if (this.#self && record.startedAt !== this.#self.startedAt) {
          this.#logger.error(
            { nodeId: id, otherStartedAt: record.startedAt },
            'another process writes a record under this node id: give every node its own SFU_NODE_ID',
          );
        }
        continue;
      }
      if (!touchedSince(id)) this.#view.upsert(record);
    }
    if (Date.now() >= this.#graceUntil) {
      for (const id of this.#view.ids()) {
        if (id !== selfId && !found.has(id) && !touchedSince(id)) this.#view.remove(id, 'expired');
      }
    }
    for (const [id, seq] of this.#touched) if (seq < startSeq) this.#touched.delete(id);
  }

  #parseStored(key: string, value: string): NodeRecord | undefined {
    const result = this.#signed.openRecord(key, value);
    if (result.ok) {
      this.#badKeys.delete(key);
      return result.value;
    }
    if (this.#badKeys.get(key) !== value) {
      if (this.#badKeys.size >= MAX_BAD_KEYS) this.#badKeys.clear();
      this.#badKeys.set(key, value);
      this.#rejections.report('node-record', result.reason, result.detail, { key });
    }
    return undefined;
  }

  // ---- pub/sub ----------------------------------------------------------------------

  async #publish(message: MembershipMessage): Promise<void> {
    try {
      await this.#redis.command.publish(this.keys.nodesChannel, this.#signed.sealMessage(message));
    } catch (error) {
      // Others still see the change on their next reconcile.
      this.#redisError('publish', error);
    }
  }

  readonly #onMessage = (message: string, channel: string): void => {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    if (channel === this.keys.expiredChannel(this.#db)) {
      const id = this.keys.nodeIdOf(message);
      if (id === undefined) return; // some other key of the same database
      if (id === this.#ownId) {
        if (this.#self) {
          this.#logger.warn({ nodeId: id }, 'own record expired: heartbeat late by > TTL');
          this.#tickSoon(); // write it again now
        }
        return;
      }
      void this.#confirmGone(id, 'expired', 'expiry');
      return;
    }
    if (channel !== this.keys.nodesChannel) return;
    const opened = this.#signed.openMessage(message);
    if (!opened.ok) {
      this.#rejections.report('node-message', opened.reason, opened.detail);
      return;
    }
    const parsed = opened.value;
    const id = parsed.type === 'down' ? parsed.id : parsed.node.id;
    if (id === this.#ownId) return; // our own echo
    if (parsed.type === 'down') {
      void this.#confirmGone(id, 'deregistered', 'node-message');
      return;
    }
    this.#touch(id);
    this.#view.upsert(parsed.node);
  };

  /**
   * An expiry notification (which anyone who can PUBLISH can forge) or a down message is
   * believed only once the node's record is really gone: a node with a valid record stays,
   * and the notification is counted as rejected. A Redis error leaves the view as it is
   * (the next reconcile decides).
   */
  async #confirmGone(id: string, reason: NodeDownReason, kind: ClusterRejectKind): Promise<void> {
    const key = this.keys.node(id);
    const since = this.#seq;
    let value: string | null;
    try {
      value = await this.#redis.command.get(key);
    } catch (error) {
      this.#redisError('confirm-down', error);
      return;
    }
    if (this.#state === 'closed') return;
    // An up or update of the node came in meanwhile (a restart): it is newer than this.
    if ((this.#touched.get(id) ?? -1) >= since) return;
    if (value !== null && this.#signed.openRecord(key, value).ok) {
      const detail = `node ${id} still has a valid record`;
      this.#rejections.report(kind, 'node-alive', detail, { nodeId: id });
      return;
    }
    this.#touch(id);
    this.#view.remove(id, reason);
  }

  #touch(id: string): void {
    this.#touched.set(id, this.#seq++);
  }

  // ---- connection -------------------------------------------------------------------

  /** Redis answers again, with our channels subscribed and notifications set again. */
  #onUp(reconnected: boolean): void {
    // The first connect happens inside start(), which does the set-up.
    if (this.#state !== 'running') return;
    if (this.#degraded) {
      this.#degraded = false;
      this.#logger.info({ redis: this.#redisLabel }, 'Redis connection restored');
    }
    // Redis may have restarted empty: the others re-register on their next heartbeat, so
    // do not drop nodes that are merely missing for one TTL. (Not after a hang: nothing was
    // lost then.)
    if (reconnected) this.#graceUntil = Date.now() + this.ttlMs;
    // Write our record now (it may be gone) and re-read everything: messages published
    // while we were away are lost (nothing replays them).
    this.#tickSoon();
  }

  /** Best effort: the connection's owner may close it right after (or already did). */
  async #unsubscribe(): Promise<void> {
    await Promise.allSettled(
      this.#channels.map((channel) => this.#redis.unsubscribe(channel, this.#onMessage)),
    );
  }

  #redisError(op: string, error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    if (this.#state === 'closed') return;
    this.safeEmit('redisError', op, err);
    this.#redis.commandFailed(op, err);
    if (!this.#degraded) {
      this.#degraded = true;
      this.#logger.warn(
        { op, err, redis: this.#redisLabel },
        'Redis error: keeping the last known node list',
      );
    } else {
      this.#logger.debug({ op, err: err.message }, 'Redis error');
    }
  }

  #assertOpen(): void {
    if (this.#state === 'closed' || this.#life.closing) {
      throw new InvalidStateError('the registry is closed');
    }
  }
}
