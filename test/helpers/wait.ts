import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';

/**
 * Polls `probe` until it returns something other than undefined. For conditions that no
 * event announces (a metric reaching a value, a key disappearing from Redis): waiting for a
 * condition, never sleeping a fixed time and hoping.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
  intervalMs = 50,
  lastSeen?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastSeen ? `: ${lastSeen()}` : ''}`,
      );
    await sleep(intervalMs);
  }
}

/**
 * Reads `read` until its value deep-equals `expected` (state that converges across nodes or
 * processes: a room view, a gauge, a registry list). On timeout the error shows the last value
 * read, so a failure says what the state was, not only that it was wrong.
 */
export async function waitForEqual<T>(
  what: string,
  read: () => Promise<T> | T,
  expected: T,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<void> {
  let last: T | undefined;
  await waitUntil(
    what,
    async () => {
      last = await read();
      return isDeepStrictEqual(last, expected) ? true : undefined;
    },
    timeoutMs,
    intervalMs,
    () => `expected ${JSON.stringify(expected)}, last read ${JSON.stringify(last)}`,
  );
}

/**
 * Asserts that `probe` stays true for `durationMs`, reading it every `intervalMs` and failing
 * at the first read that is false: for what must not happen (a duplicate link, a kicked
 * participant), which no event can announce.
 */
export async function assertStays(
  what: string,
  probe: () => Promise<boolean> | boolean,
  durationMs: number,
  intervalMs = 100,
): Promise<void> {
  const end = Date.now() + durationMs;
  for (;;) {
    if (!(await probe())) throw new Error(`${what} stopped holding`);
    if (Date.now() >= end) return;
    await sleep(intervalMs);
  }
}
