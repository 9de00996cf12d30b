/**
 * Connection helpers shared by every Redis user of the project (node registry, room store,
 * relay bus). Typed structurally so that this package needs no ioredis dependency.
 */

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
