import {
  type Logger,
  quitRedis,
  redactRedisUrl,
  redisClientOptions,
  SfuError,
} from '@geosfu/common';
import { DEFAULT_KEY_PREFIX, registryKeys } from '@geosfu/registry';
import { Redis, type RedisOptions } from 'ioredis';
import { BaseRelayBus } from './BaseRelayBus.js';

export interface RedisRelayBusOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://` for TLS. */
  url: string;
  /** This node's id (the registry's): it listens on `{prefix}relay:{nodeId}`. */
  nodeId: string;
  /** The cluster secret, the same on every node, at least 32 characters. */
  secret: string;
  /** Prefix of every key and channel; default `sfu:`. Tests use one per suite. */
  keyPrefix?: string;
  /** Extra ioredis options (TLS, Sentinel ...); the bus's own settings below win. */
  redisOptions?: RedisOptions;
  logger?: Logger;
}

/** Deadline of a PUBLISH: a request must not hang on a Redis that does not answer. */
const COMMAND_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
const RECONNECT_MAX_MS = 2_000;

/** The pub/sub channel node `nodeId` listens on. */
export function relayChannel(nodeId: string, keyPrefix: string = DEFAULT_KEY_PREFIX): string {
  // registryKeys validates the prefix (CONFIG_INVALID); node ids are checked by the bus.
  return `${registryKeys(keyPrefix).prefix}relay:${nodeId}`;
}

/**
 * RelayBus over Redis pub/sub: PUBLISH to the peer's channel, SUBSCRIBE to our own.
 *
 * Two connections, as Redis requires (a subscribed connection takes no other command):
 * one publishes, one listens. Nothing is queued while Redis is away: a PUBLISH fails at
 * once, and `request` backs off and tries again. After a reconnect, when both connections
 * are ready and the channel is subscribed again, the bus emits `reconnected`. Pub/sub
 * delivers at most once: what was published to us while we were away is lost, which the
 * requester's retries cover for requests.
 */
export class RedisRelayBus extends BaseRelayBus {
  readonly kind = 'redis';
  readonly channel: string;
  readonly #keyPrefix: string;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #redisLabel: string;
  /** Set once the channel is subscribed; from then on, a reconnect is worth reporting. */
  #listening = false;
  /** A connection went down since the channel was last subscribed. */
  #down = false;
  #resubscribing: Promise<void> | undefined;

  constructor(options: RedisRelayBusOptions) {
    super(options);
    this.#keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.channel = relayChannel(this.nodeId, this.#keyPrefix);
    this.#redisLabel = redactRedisUrl(options.url);
    const redisOptions = redisClientOptions(options.redisOptions, {
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      reconnectMaxMs: RECONNECT_MAX_MS,
    });
    this.#cmd = new Redis(options.url, { ...redisOptions, connectionName: 'sfu-relay' });
    this.#sub = new Redis(options.url, { ...redisOptions, connectionName: 'sfu-relay-sub' });
    for (const [client, name] of [
      [this.#cmd, 'connect'],
      [this.#sub, 'subscriber'],
    ] as const) {
      // Without an 'error' listener ioredis prints every failed reconnect to the console.
      client.on('error', (error: Error) => this.transportError(name, error));
      client.on('close', () => this.#onClose(name));
      client.on('ready', () => this.#onReady());
    }
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.receive(message);
    });
  }

  get connected(): boolean {
    return (
      this.state === 'running' &&
      this.#cmd.status === 'ready' &&
      this.#sub.status === 'ready' &&
      !this.#down
    );
  }

  protected async openTransport(): Promise<void> {
    try {
      await Promise.all([this.#cmd.connect(), this.#sub.connect()]);
      await this.#sub.subscribe(this.channel);
    } catch (error) {
      // ioredis goes on reconnecting after a failed first connect; stop it.
      this.#cmd.disconnect();
      this.#sub.disconnect();
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot use Redis at ${this.#redisLabel} for relay signalling: ${(error as Error).message}; check REDIS_URL`,
        { cause: error },
      );
    }
    this.#listening = true;
    this.logger.debug({ channel: this.channel }, 'subscribed to the relay channel');
  }

  protected async transmit(to: string, payload: string): Promise<number> {
    return this.#cmd.publish(relayChannel(to, this.#keyPrefix), payload);
  }

  protected async closeTransport(): Promise<void> {
    this.#listening = false;
    await this.#resubscribing;
    await Promise.all([quitRedis(this.#sub), quitRedis(this.#cmd)]);
  }

  #onClose(name: string): void {
    if (!this.#listening || this.state !== 'running') return;
    if (!this.#down) {
      this.#down = true;
      this.logger.warn(
        { redis: this.#redisLabel, connection: name },
        'Redis connection lost: relay messages to this node are lost until it is back',
      );
    }
  }

  /**
   * Both connections are ready again: make sure the channel is subscribed (ioredis
   * re-subscribes by itself; SUBSCRIBE is idempotent, and its reply tells us it is done).
   */
  #onReady(): void {
    if (!this.#listening || !this.#down || this.state !== 'running') return;
    if (this.#cmd.status !== 'ready' || this.#sub.status !== 'ready') return;
    this.#resubscribing ??= this.#sub
      .subscribe(this.channel)
      .then(
        () => {
          if (!this.#listening || this.#cmd.status !== 'ready' || this.#sub.status !== 'ready') {
            return; // closed, or down again: the next 'ready' tries again
          }
          this.#down = false;
          this.logger.info({ redis: this.#redisLabel }, 'relay channel subscribed again');
          this.safeEmit('reconnected');
        },
        (error: unknown) => this.transportError('resubscribe', error),
      )
      .finally(() => {
        this.#resubscribing = undefined;
      });
  }
}
