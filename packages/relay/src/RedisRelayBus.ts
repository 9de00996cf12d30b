import { type Logger, type RedisConnection, SfuError } from '@geosfu/common';
import { DEFAULT_KEY_PREFIX, registryKeys } from '@geosfu/registry';
import { BaseRelayBus } from './BaseRelayBus.js';

export interface RedisRelayBusOptions {
  /** The process's Redis connection (started by the bus if needed, closed by its owner). */
  redis: RedisConnection;
  /** This node's id (the registry's): it listens on `{prefix}relay:{nodeId}`. */
  nodeId: string;
  /** The cluster secret, the same on every node, at least 32 characters. */
  secret: string;
  /** Prefix of every key and channel; default `sfu:`. Tests use one per suite. */
  keyPrefix?: string;
  logger?: Logger;
}

/** The pub/sub channel node `nodeId` listens on. */
export function relayChannel(nodeId: string, keyPrefix: string = DEFAULT_KEY_PREFIX): string {
  // registryKeys validates the prefix (CONFIG_INVALID); node ids are checked by the bus.
  return `${registryKeys(keyPrefix).prefix}relay:${nodeId}`;
}

/**
 * RelayBus over Redis pub/sub: PUBLISH to the peer's channel, SUBSCRIBE to our own, on the
 * process's `RedisConnection`. Nothing is queued while Redis is away: a PUBLISH fails at
 * once, and `request` backs off and tries again. When the connection is `up` again (the
 * channel subscribed again), the bus emits `reconnected`. Pub/sub delivers at most once:
 * what was published to us while we were away is lost, which the requester's retries cover
 * for requests.
 */
export class RedisRelayBus extends BaseRelayBus {
  readonly kind = 'redis';
  readonly channel: string;
  readonly #keyPrefix: string;
  readonly #redis: RedisConnection;
  #offUp: (() => void) | undefined;

  constructor(options: RedisRelayBusOptions) {
    super(options);
    this.#keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.channel = relayChannel(this.nodeId, this.#keyPrefix);
    this.#redis = options.redis;
  }

  get connected(): boolean {
    return this.state === 'running' && this.#redis.connected;
  }

  protected async openTransport(): Promise<void> {
    try {
      await this.#redis.start();
      await this.#redis.subscribe(this.channel, this.#onMessage);
    } catch (error) {
      await this.#redis.unsubscribe(this.channel, this.#onMessage).catch(() => {
        // Best effort: a channel left registered is only dropped messages.
      });
      if (error instanceof SfuError) throw error;
      throw new SfuError(
        'SERVICE_UNAVAILABLE',
        `cannot use Redis at ${this.#redis.label} for relay signalling: ${(error as Error).message}; check REDIS_URL`,
        { cause: error },
      );
    }
    this.#offUp = this.#redis.on('up', () => {
      if (this.state !== 'running') return;
      this.logger.info({ redis: this.#redis.label }, 'relay channel subscribed again');
      this.safeEmit('reconnected');
    });
    this.logger.debug({ channel: this.channel }, 'subscribed to the relay channel');
  }

  protected async transmit(to: string, payload: string): Promise<number> {
    try {
      return await this.#redis.command.publish(relayChannel(to, this.#keyPrefix), payload);
    } catch (error) {
      this.#redis.commandFailed('relay publish', error);
      throw error;
    }
  }

  protected async closeTransport(): Promise<void> {
    this.#offUp?.();
    await this.#redis.unsubscribe(this.channel, this.#onMessage).catch((error: unknown) => {
      // The connection's owner may close it right after; it forgets the channel then.
      this.logger.debug({ err: error }, 'relay channel not unsubscribed');
    });
  }

  readonly #onMessage = (message: string): void => {
    this.receive(message);
  };
}
