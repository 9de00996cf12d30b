import { type FSWatcher, watch } from 'node:fs';
import type { Logger } from './logger.js';

export interface FileWatchOptions {
  /** Directories of the watched files (a file watch would lose an atomically replaced file). */
  dirs: readonly string[];
  /** Stat-polling interval, ms: the safety net under the directory watch. */
  pollIntervalMs: number;
  /** Reads the files and applies what changed; must not reject (log instead). */
  check: () => Promise<void>;
  /** Names the files in log lines ("GeoIP", "TLS certificate"). */
  label: string;
  logger: Logger;
}

/** A burst of file events (copy, then rename) becomes one check after this quiet time. */
const WATCH_DEBOUNCE_MS = 200;

/**
 * Calls `check` when files that are replaced in place may have changed: a watch on their
 * directories (debounced) plus a poll as the safety net (watches miss events on some file
 * systems and in containers with bind mounts). Checks never overlap: a change during a check
 * runs one more after it. The GeoIP databases and the node's TLS certificate reload this way.
 */
export class FileWatch {
  readonly #options: FileWatchOptions;
  readonly #watchers: FSWatcher[] = [];
  #pollTimer: NodeJS.Timeout | undefined;
  #debounceTimer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #checkAgain = false;
  #closed = false;

  constructor(options: FileWatchOptions) {
    this.#options = options;
    const { logger, label } = options;
    // Watch directories, not files: an atomic replace (write a temp file, rename it over
    // the old one, as certbot and geoipupdate do) gives the file a new inode.
    for (const dir of new Set(options.dirs)) {
      try {
        const watcher = watch(dir, () => this.#debouncedCheck());
        watcher.on('error', (error) => {
          logger.warn({ err: error, dir }, `${label} directory watch failed; polling only`);
          watcher.close();
        });
        this.#watchers.push(watcher);
      } catch (error) {
        logger.warn({ err: error, dir }, `cannot watch the ${label} directory; polling only`);
      }
    }
    this.#poll();
  }

  /** Runs a check now (or once more after the one running). Resolves when done. */
  checkNow(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#checking !== undefined) {
      this.#checkAgain = true;
      return this.#checking;
    }
    this.#checking = this.#options.check().finally(() => {
      this.#checking = undefined;
      if (this.#checkAgain) {
        this.#checkAgain = false;
        void this.checkNow();
      }
    });
    return this.#checking;
  }

  /** Stops watching and polling, after the check in progress. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#debounceTimer);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers.length = 0;
    await this.#checking;
  }

  #poll(): void {
    this.#pollTimer = setTimeout(() => {
      void this.checkNow().then(() => {
        if (!this.#closed) this.#poll();
      });
    }, this.#options.pollIntervalMs);
  }

  #debouncedCheck(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounceTimer);
    this.#debounceTimer = setTimeout(() => void this.checkNow(), WATCH_DEBOUNCE_MS);
  }
}
