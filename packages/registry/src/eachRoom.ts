import { InvalidStateError, type Logger } from '@geosfu/common';
import { checkRoom } from './MemoryRoomStore.js';

/**
 * Runs `each` for every room read from Redis (a node's `noderooms` set), all of them even if
 * some fail, then throws the first error: one bad room must not stop a reap or a reassert
 * of the others. Invalid room names (junk in the set) are skipped and logged.
 */
export async function eachRoom<T>(
  logger: Logger,
  rooms: string[],
  each: (room: string) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  let firstError: unknown;
  let failed = 0;
  for (const room of rooms) {
    try {
      checkRoom(room);
    } catch (error) {
      logger.warn({ room, err: error }, 'ignoring an invalid room name in Redis');
      continue;
    }
    try {
      results.push(await each(room));
    } catch (error) {
      failed++;
      firstError ??= error;
      if (error instanceof InvalidStateError) break; // closed: no point going on
    }
  }
  if (failed > 0) {
    logger.warn({ rooms: rooms.length, failed }, 'some rooms could not be updated');
    throw firstError;
  }
  return results;
}
