import type { RedisOptions } from 'ioredis';
/** Helpers of `RedisConnection`, the one place that builds Redis clients. */

/** The part of an ioredis client that `quitRedis` needs. */
export interface QuittableRedis {
  readonly status: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/** Longest wait for QUIT on close before the socket is cut. */
export const REDIS_QUIT_TIMEOUT_MS = 1_000;

/** QUITs politely, and cuts the socket if Redis does not answer in time. Never throws. */
export async function quitRedis(client: QuittableRedis): Promise<void> {
  // 'wait': never connected (lazyConnect); a QUIT would connect just to say goodbye.
  if (client.status === 'end' || client.status === 'wait') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.quit(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, REDIS_QUIT_TIMEOUT_MS);
      }),
    ]);
  } catch {
    // QUIT fails when the connection is already down; disconnect() below is what matters.
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/** The URL without its password, for logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable Redis URL)'; // never echo it: it may hold a password
  }
}

export interface RedisTiming {
  /** Deadline of every command, ms. */
  commandTimeoutMs: number;
  /** Deadline of a connection attempt, ms. */
  connectTimeoutMs: number;
  /** Longest wait between reconnection attempts, ms (the back-off starts at 50 ms). */
  reconnectMaxMs: number;
}

/** The first wait of the reconnection back-off. */
const RECONNECT_MIN_MS = 50;

/**
 * The ioredis options every Redis user of the project shares; `base` (an operator's TLS,
 * Sentinel settings) comes first and these win.
 */
export function redisClientOptions(
  base: RedisOptions | undefined,
  timing: RedisTiming,
): RedisOptions {
  return {
    ...base,
    lazyConnect: true,
    // Fail fast while disconnected instead of queueing: a heartbeat, a join or a relay
    // request that waits in a queue for a Redis that may not come back is worse than one
    // refused at once, counted, and retried by its owner.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // ioredis's own re-subscribe after a reconnect does not handle its promise: when the
    // connection drops again at once (offline queue off), it is an unhandled rejection,
    // which ends a Node process. RedisConnection re-subscribes itself, handling errors.
    autoResubscribe: false,
    commandTimeout: timing.commandTimeoutMs,
    connectTimeout: timing.connectTimeoutMs,
    retryStrategy: retryStrategy(timing.reconnectMaxMs),
  };
}

/**
 * A reply error means Redis answered (a bad key type, a script bug): not an outage. Except
 * READONLY: the server we talk to was demoted to a replica (a Sentinel failover), so the
 * master is elsewhere and the connection must find it.
 */
export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError' && !isReadOnlyError(error);
}

/** The reply of a replica to a write: this client talks to a demoted master. */
export function isReadOnlyError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('READONLY');
}

/** Where the sentinels are and which master they watch (`REDIS_SENTINELS` and friends). */
export interface SentinelOptions {
  sentinels: readonly { readonly host: string; readonly port: number }[];
  /** The master name the sentinels monitor. */
  masterName: string;
  /** The sentinels' own password, if they require one. */
  password?: string | undefined;
}

/**
 * ioredis's own Sentinel support: the client asks a sentinel for the master's address on
 * every (re)connect and checks the server's role when ready (a demoted master is left for
 * the next sentinel's answer). `failoverDetector` subscribes `+switch-master` on the
 * sentinels and drops the connection at once on a failover, instead of waiting for the old
 * master to close it; a READONLY reply (a write to a server demoted meanwhile) reconnects too.
 * When no sentinel answers, ioredis asks them all again after a back-off, forever; while
 * `failFast()` is true (the first connect) it gives up instead, so that a node with wrong
 * sentinel addresses stops with an error rather than hang at start.
 */
export function sentinelClientOptions(
  sentinel: SentinelOptions,
  tls: boolean,
  timing: RedisTiming,
  failFast: () => boolean,
): RedisOptions {
  const backoff = retryStrategy(timing.reconnectMaxMs);
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.masterName,
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
    role: 'master',
    failoverDetector: true,
    enableTLSForSentinelMode: tls,
    sentinelCommandTimeout: timing.commandTimeoutMs,
    sentinelRetryStrategy: (times: number) => (failFast() ? null : backoff(times)),
    sentinelReconnectStrategy: backoff,
    reconnectOnError: (error: Error) => isReadOnlyError(error),
  };
}

function retryStrategy(reconnectMaxMs: number): (times: number) => number {
  // Exponential back-off with full jitter, capped, so that a restart is noticed soon.
  return (times: number) =>
    Math.max(
      RECONNECT_MIN_MS,
      Math.round(Math.random() * Math.min(reconnectMaxMs, RECONNECT_MIN_MS * 2 ** times)),
    );
}
