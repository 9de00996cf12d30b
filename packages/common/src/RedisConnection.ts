import { Redis, type RedisOptions } from 'ioredis';
import type { NodeConfig } from './config.js';
import { InvalidStateError, SfuError } from './errors.js';
import { TypedEmitter } from './events.js';
import { Lifecycle } from './Lifecycle.js';
import { type Logger, silentLogger } from './logger.js';
import {
  isReplyError,
  quitRedis,
  redactRedisUrl,
  redisClientOptions,
  type SentinelOptions,
  sentinelClientOptions,
} from './redis.js';
import { TaskTimer } from './TaskTimer.js';

export interface RedisConnectionOptions {
  /**
   * `redis://[:password@]host:port[/db]` or `rediss://` for TLS. With `sentinel`, only its
   * password, database and scheme are used: the sentinels say where the master is.
   */
  url: string;
  /** Redis Sentinel: ask these sentinels for the master, and follow its failovers. */
  sentinel?: SentinelOptions;
  /** Extra ioredis options (TLS); the timing below and our settings win. */
  redisOptions?: RedisOptions;
  /** Deadline of every command, ms. Default 1 000. */
  commandTimeoutMs?: number;
  /** Deadline of a connection attempt, ms. Default 2 000. */
  connectTimeoutMs?: number;
  /** Longest wait between reconnection attempts, ms. Default 2 000. */
  reconnectMaxMs?: number;
  /** CLIENT SETNAME of the two connections: `name` and `name-sub`. Default `sfu`. */
  name?: string;
  logger?: Logger;
}

export type RedisConnectionEvents = {
  /** Redis stopped answering (a connection closed, or a command failed without a reply). */
  down: [reason: string];
  /**
   * Redis answers again and every channel is subscribed again (never on the first
   * connect). `reconnected`: a connection was re-established meanwhile, so Redis may have
   * restarted empty (keys, scripts and CONFIG forgotten); false after a hang.
   */
  up: [info: { reconnected: boolean }];
  /**
   * The command connection reached another server than before (a Sentinel failover, or the
   * master moved): `from` and `to` are `host:port`. Always followed by `up` with
   * `reconnected` (the new master may lack the last writes of the old one).
   */
  failover: [info: { from: string; to: string }];
  /** A connection-level failure, for `sfu_redis_errors_total{op}` (`connect`, `subscriber`, `probe`, `resubscribe`). */
  redisError: [op: string, error: Error];
};

export type RedisConnectionState = 'new' | 'starting' | 'up' | 'down' | 'closed';

/** Receives a message published on a channel it subscribed to. */
export type MessageHandler = (message: string, channel: string) => void;

/** A Lua script registered with `defineScript`: EVALSHA, and EVAL when Redis lacks it. */
export type ScriptRunner = (
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<unknown>;

/** How often a connection that is down checks whether Redis answers again. */
export const REDIS_PROBE_INTERVAL_MS = 250;
const DEFAULT_COMMAND_TIMEOUT_MS = 1_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
const DEFAULT_RECONNECT_MAX_MS = 2_000;
/** The keyspace event classes that the `A` flag stands for (redis.io, "Keyspace notifications"). */
const ALL_EVENT_CLASSES = 'g$lshzxetd';

/**
 * The one Redis connection of a process: every Redis user of a node (registry, room store,
 * relay bus) shares it; whoever creates it closes it, after its users.
 *
 * - Two ioredis clients, as Redis requires (a subscribed connection takes no other
 *   command): `command` for commands, and a subscriber that only this class drives.
 * - Subscriptions are a channel-to-handler map. ioredis's own re-subscribe is off (see
 *   `redisClientOptions`); after every outage this class subscribes every channel of the
 *   map again, unsubscribes what was dropped meanwhile, and sets `notify-keyspace-events`
 *   again if a user asked for it (a restarted Redis forgot it), and only then emits `up`.
 * - Down: a connection closed, or a user reported a command that failed without a reply
 *   (`commandFailed`: a timeout of a hung server). Until a PING answers again `connected`
 *   is false, users refuse what needs Redis, and nothing is queued (offline queue off).
 * - Lua scripts go through ioredis `defineCommand` (`defineScript`): EVALSHA, falling back
 *   to EVAL on a socket that has not loaded it or after NOSCRIPT (SCRIPT FLUSH, a restart).
 */
export class RedisConnection extends TypedEmitter<RedisConnectionEvents> {
  /** The URL without its password, for logs and error messages. */
  readonly label: string;
  readonly #logger: Logger;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  #state: RedisConnectionState = 'new';
  readonly #life = new Lifecycle('the Redis connection', () => this.#start());
  readonly #handlers = new Map<string, Set<MessageHandler>>();
  /** Channels whose UNSUBSCRIBE failed: unsubscribed again when Redis is back. */
  readonly #stale = new Set<string>();
  readonly #scripts = new Map<string, { lua: string; run: ScriptRunner }>();
  /** notify-keyspace-events flags some user needs (set again after every outage). */
  #keyspaceFlags = '';
  readonly #keyspaceWhy: string[] = [];
  #keyspaceWarned = false;
  /** Bumped whenever a client's socket closes: a probe that saw it change starts over. */
  #epoch = 0;
  /** A socket closed since the last `up`: Redis may have restarted. */
  #reconnected = false;
  readonly #prober = new TaskTimer(() => this.#probe());
  /** Per client: connects it again after ioredis gave up on it (see #revive). */
  readonly #revivers: TaskTimer[] = [];
  /** Sentinel mode: the master the command connection last reached, `host:port`. */
  #master: string | undefined;
  readonly #sentinel: boolean;

  constructor(options: RedisConnectionOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'redis' });
    super((event, error) => logger.error({ err: error, event }, 'Redis listener threw'));
    this.#logger = logger;
    const timing = {
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      reconnectMaxMs: options.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS,
    };
    const { sentinel } = options;
    this.#sentinel = sentinel !== undefined;
    this.label = sentinel
      ? `sentinel master ${sentinel.masterName} via ${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')} (${redactRedisUrl(options.url)})`
      : redactRedisUrl(options.url);
    const clientOptions = redisClientOptions(
      sentinel
        ? {
            ...options.redisOptions,
            ...sentinelClientOptions(
              sentinel,
              options.url.startsWith('rediss:'),
              timing,
              () => this.#state === 'starting',
            ),
          }
        : options.redisOptions,
      timing,
    );
    const name = options.name ?? 'sfu';
    this.#cmd = new Redis(options.url, { ...clientOptions, connectionName: name });
    this.#sub = new Redis(options.url, { ...clientOptions, connectionName: `${name}-sub` });
    for (const [client, op] of [
      [this.#cmd, 'connect'],
      [this.#sub, 'subscriber'],
    ] as const) {
      // Without an 'error' listener ioredis prints every failed reconnect to the console.
      client.on('error', (error: Error) => this.#error(op, error));
      client.on('close', () => this.#onClose(op));
      client.on('ready', () => this.#probeSoon(0));
      const reviver = new TaskTimer(() => this.#revive(client, op));
      this.#revivers.push(reviver);
      client.on('end', () => {
        if (this.#state === 'up' || this.#state === 'down')
          reviver.schedule(REDIS_PROBE_INTERVAL_MS);
      });
    }
    this.#sub.on('message', (channel: string, message: string) => this.#dispatch(channel, message));
    if (this.#sentinel) this.#cmd.on('ready', () => this.#checkMaster());
  }

  /**
   * The connection of a node or directory from its config. Every Redis option is chosen
   * here: commands have a 1 s deadline (a join must not hang on a Redis that does not
   * answer), the reconnection back-off is capped at the registry heartbeat (at most 2 s) so
   * that a restarted Redis or a promoted replica is noticed within about a heartbeat, and
   * with `REDIS_SENTINELS` both connections find the master through the sentinels.
   */
  static fromConfig(
    config: Pick<
      NodeConfig,
      | 'redisUrl'
      | 'heartbeatMs'
      | 'redisSentinels'
      | 'redisSentinelMaster'
      | 'redisSentinelPassword'
    >,
    logger: Logger,
  ): RedisConnection | undefined {
    if (config.redisUrl === undefined) return undefined;
    return new RedisConnection({
      url: config.redisUrl,
      ...(config.redisSentinels && {
        sentinel: {
          sentinels: config.redisSentinels,
          masterName: config.redisSentinelMaster,
          password: config.redisSentinelPassword,
        },
      }),
      reconnectMaxMs: Math.min(DEFAULT_RECONNECT_MAX_MS, config.heartbeatMs),
      logger,
    });
  }

  /**
   * The client for commands. Never SUBSCRIBE on it (use `subscribe`); on a failure without
   * a reply, call `commandFailed` so that every user of the process learns Redis is down.
   */
  get command(): Redis {
    return this.#cmd;
  }

  get state(): RedisConnectionState {
    return this.#state;
  }

  /** Redis answers: started, not down, both connections ready. */
  get connected(): boolean {
    return this.#state === 'up' && this.#cmd.status === 'ready' && this.#sub.status === 'ready';
  }

  /** The database number of the URL (keyspace notification channels name it). */
  get db(): number {
    return this.#cmd.options.db ?? 0;
  }

  /** Connects both clients. Idempotent; a failed start can be tried again. */
  start(): Promise<void> {
    return this.#life.start();
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    const epoch = this.#epoch;
    try {
      await Promise.all([this.#cmd.connect(), this.#sub.connect()]);
      await this.#restore();
    } catch (error) {
      // ioredis goes on reconnecting after a failed first connect; stop it.
      this.#cmd.disconnect();
      this.#sub.disconnect();
      if (this.#state === 'starting') this.#state = 'new';
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot use Redis at ${this.label}: ${(error as Error).message}; check ${this.#sentinel ? 'REDIS_SENTINELS, REDIS_SENTINEL_MASTER and REDIS_URL' : 'REDIS_URL'} (or leave REDIS_URL unset for single-node mode)`,
        { cause: error },
      );
    }
    if (this.#state !== 'starting') return; // closed meanwhile
    this.#state = 'up';
    this.#reconnected = false;
    this.#logger.info({ redis: this.label }, 'Redis connected');
    // A socket that closed during the set-up was ignored above: treat it as an outage now.
    if (this.#epoch !== epoch || !this.connected)
      this.#goDown('a connection closed while starting');
  }

  /**
   * Calls `handler` with every message on `channel` from now until `unsubscribe`, across
   * outages. Resolves once Redis confirmed the SUBSCRIBE. While Redis is down it rejects at
   * once with SERVICE_UNAVAILABLE, and the channel is subscribed when Redis is back.
   */
  async subscribe(channel: string, handler: MessageHandler): Promise<void> {
    if (this.#life.closing) throw new InvalidStateError('the Redis connection is closed');
    if (this.#state === 'new') {
      throw new InvalidStateError('the Redis connection is not started: await start() first');
    }
    let set = this.#handlers.get(channel);
    if (!set) {
      set = new Set();
      this.#handlers.set(channel, set);
    }
    set.add(handler);
    this.#stale.delete(channel);
    if (this.#state === 'starting') await this.#life.start();
    if (this.#state !== 'up') {
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `Redis is unreachable (${this.label}): ${channel} is subscribed when it is back`,
      );
    }
    try {
      await this.#sub.subscribe(channel);
    } catch (error) {
      this.commandFailed('subscribe', error);
      throw error;
    }
  }

  /**
   * Stops calling `handler` for `channel` at once; the last handler of a channel also
   * UNSUBSCRIBEs it. If that fails (Redis away) it rejects, and the channel is unsubscribed
   * when Redis is back. A no-op once closed.
   */
  async unsubscribe(channel: string, handler: MessageHandler): Promise<void> {
    const set = this.#handlers.get(channel);
    if (!set?.delete(handler) || set.size > 0) return;
    this.#handlers.delete(channel);
    if (this.#life.closing || this.#state === 'new') return;
    if (this.#sub.status !== 'ready') {
      this.#stale.add(channel);
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `the subscriber connection to ${this.label} is down: ${channel} is unsubscribed when it is back`,
      );
    }
    try {
      await this.#sub.unsubscribe(channel);
    } catch (error) {
      this.#stale.add(channel);
      this.commandFailed('unsubscribe', error);
      throw error;
    }
  }

  /** The channels subscribed now or to be subscribed when Redis is back. */
  channels(): string[] {
    return [...this.#handlers.keys()];
  }

  /**
   * Registers a Lua script with ioredis `defineCommand` and returns a typed runner. The
   * runner passes the number of keys itself, so scripts may take any number of keys.
   * Defining the same name with the same body again returns the same runner.
   */
  defineScript(name: string, lua: string): ScriptRunner {
    const known = this.#scripts.get(name);
    if (known) {
      if (known.lua !== lua)
        throw new TypeError(`script ${name} is already defined as another one`);
      return known.run;
    }
    if (!/^[a-z][A-Za-z0-9]*$/.test(name) || name in this.#cmd) {
      throw new TypeError(`script name ${name} must be a new camelCase name, not a client method`);
    }
    this.#cmd.defineCommand(name, { lua });
    // defineCommand adds the method at run time; ioredis's types cannot know it.
    const client = this.#cmd as unknown as Record<
      string,
      (...args: (string | number)[]) => Promise<unknown>
    >;
    const run: ScriptRunner = (keys, args) => {
      const method = client[name];
      if (!method) throw new TypeError(`script ${name} is not defined`);
      return method.call(client, keys.length, ...keys, ...args);
    };
    this.#scripts.set(name, { lua, run });
    return run;
  }

  /**
   * Makes sure `notify-keyspace-events` holds `flags` (keeping flags others set), now and
   * after every outage, since a restarted Redis forgets it. Resolves false when Redis
   * refuses (managed services rename CONFIG); `consequence` is then logged once at warn.
   */
  async requireKeyspaceEvents(flags: string, consequence: string): Promise<boolean> {
    this.#keyspaceFlags = [...new Set(this.#keyspaceFlags + flags)].join('');
    if (!this.#keyspaceWhy.includes(consequence)) this.#keyspaceWhy.push(consequence);
    try {
      await this.#applyKeyspaceEvents();
      return true;
    } catch (error) {
      this.#keyspaceFailed(error);
      return false;
    }
  }

  /**
   * A command failed. Unless Redis answered it (a ReplyError: a bad key type, a script
   * bug), Redis is taken for down until a PING answers: a timeout means a hung server.
   */
  commandFailed(op: string, error: unknown): void {
    if (isReplyError(error)) return;
    this.#goDown(`${op} failed: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** Quits both connections and clears every timer. Idempotent; users close first. */
  close(): Promise<void> {
    return this.#life.close(() => this.#close());
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    await this.#prober.stop();
    await Promise.all(this.#revivers.map((r) => r.stop()));
    this.#handlers.clear();
    this.#stale.clear();
    await Promise.all([quitRedis(this.#sub), quitRedis(this.#cmd)]);
    this.#logger.debug({ redis: this.label }, 'Redis connection closed');
  }

  // ---- outages ----------------------------------------------------------------------

  #onClose(which: string): void {
    this.#epoch++;
    this.#reconnected = true;
    if (this.#state === 'up') this.#goDown(`${which} connection closed`);
  }

  #goDown(reason: string): void {
    if (this.#state !== 'up') {
      if (this.#state === 'down') this.#probeSoon(REDIS_PROBE_INTERVAL_MS);
      return;
    }
    this.#state = 'down';
    this.#logger.warn(
      { redis: this.label, why: reason },
      'Redis unreachable: waiting for it to answer again',
    );
    this.safeEmit('down', reason);
    this.#probeSoon(REDIS_PROBE_INTERVAL_MS);
  }

  #probeSoon(delayMs: number): void {
    if (this.#state !== 'down' || this.#prober.running) return; // a probe reschedules itself
    this.#prober.schedule(delayMs);
  }

  /** Checks that Redis answers; if so restores subscriptions and settings and emits `up`. */
  async #probe(): Promise<void> {
    const epoch = this.#epoch;
    let back = false;
    if (this.#cmd.status === 'ready' && this.#sub.status === 'ready') {
      try {
        await this.#cmd.ping();
        try {
          await this.#restore();
          back = true;
        } catch (error) {
          this.#error('resubscribe', error);
        }
      } catch (error) {
        this.#error('probe', error);
      }
    }
    if (this.#state !== 'down') return; // closed meanwhile
    if (!back || epoch !== this.#epoch || !this.#bothReady()) {
      this.#prober.schedule(back ? 0 : REDIS_PROBE_INTERVAL_MS);
      return;
    }
    const reconnected = this.#reconnected;
    this.#reconnected = false;
    this.#state = 'up';
    this.#logger.info({ redis: this.label, reconnected }, 'Redis answering again');
    this.safeEmit('up', { reconnected });
  }

  /**
   * Sentinel mode, on every `ready` of the command connection: a server other than the last
   * one is a failover. It is logged and counted; the outage it caused is handled as any
   * other (the socket closed, so `up` follows with `reconnected`).
   */
  #checkMaster(): void {
    const stream = this.#cmd.stream;
    const master = `${stream.remoteAddress}:${stream.remotePort}`;
    const from = this.#master;
    this.#master = master;
    if (from === undefined || from === master || this.#state === 'closed') return;
    this.#logger.warn({ redis: this.label, from, to: master }, 'Redis master changed (failover)');
    this.safeEmit('failover', { from, to: master });
  }

  /**
   * A client that ioredis ended while we still use it: it never reconnects by itself. That
   * happens in Sentinel mode when the failover detector disconnects a client that is in the
   * middle of asking the sentinels (its connect then fails as "closed" and the client
   * ends), seen here under load. Connect it again; a failure ends it again, and 'end'
   * schedules the next try.
   */
  async #revive(client: Redis, op: string): Promise<void> {
    if ((this.#state !== 'up' && this.#state !== 'down') || client.status !== 'end') return;
    this.#logger.warn(
      { redis: this.label, connection: op },
      'Redis client ended: connecting again',
    );
    this.#onClose(op);
    try {
      await client.connect();
    } catch (error) {
      this.#error(op, error);
    }
  }

  #bothReady(): boolean {
    return this.#cmd.status === 'ready' && this.#sub.status === 'ready';
  }

  /**
   * What an outage may have undone: channels subscribed (also those added meanwhile),
   * dropped ones unsubscribed (a socket that survived a hang still has them), keyspace
   * notifications set.
   */
  async #restore(): Promise<void> {
    const stale = [...this.#stale].filter((channel) => !this.#handlers.has(channel));
    if (stale.length > 0) await this.#sub.unsubscribe(...stale);
    for (const channel of stale) this.#stale.delete(channel);
    const done = new Set<string>();
    for (;;) {
      // Handlers added while a SUBSCRIBE was in flight are picked up by the next round.
      const channels = [...this.#handlers.keys()].filter((channel) => !done.has(channel));
      if (channels.length === 0) break;
      await this.#sub.subscribe(...channels);
      for (const channel of channels) done.add(channel);
    }
    if (this.#keyspaceFlags !== '') {
      try {
        await this.#applyKeyspaceEvents();
      } catch (error) {
        if (!isReplyError(error)) throw error;
        this.#keyspaceFailed(error);
      }
    }
  }

  async #applyKeyspaceEvents(): Promise<void> {
    const reply = (await this.#cmd.config('GET', 'notify-keyspace-events')) as string[];
    const current = reply[1] ?? '';
    const covered = (flag: string) =>
      current.includes(flag) || (ALL_EVENT_CLASSES.includes(flag) && current.includes('A'));
    const missing = [...this.#keyspaceFlags].filter((flag) => !covered(flag));
    if (missing.length === 0) return;
    await this.#cmd.config('SET', 'notify-keyspace-events', current + missing.join(''));
  }

  #keyspaceFailed(error: unknown): void {
    if (this.#keyspaceWarned) return;
    this.#keyspaceWarned = true;
    this.#logger.warn(
      { err: error, flags: this.#keyspaceFlags },
      `cannot enable keyspace notifications: ${this.#keyspaceWhy.join('; ')}`,
    );
  }

  #dispatch(channel: string, message: string): void {
    if (this.#life.closing) return;
    for (const handler of [...(this.#handlers.get(channel) ?? [])]) {
      try {
        handler(message, channel);
      } catch (error) {
        this.#logger.error({ err: error, channel }, 'Redis message handler threw');
      }
    }
  }

  #error(op: string, error: unknown): void {
    if (this.#state === 'closed') return;
    const err = error instanceof Error ? error : new Error(String(error));
    this.safeEmit('redisError', op, err);
    this.#logger.debug({ op, err: err.message }, 'Redis error');
  }
}
