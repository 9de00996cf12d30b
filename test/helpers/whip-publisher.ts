/**
 * GStreamer's webrtcbin publishing through WHIP (`scripts/whip-publish.py`, Debian's python3
 * with python3-gi): an independent WebRTC stack (libnice, libsrtp, GStreamer's DTLS) against
 * the node. Every publisher started here is killed when the test process ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onExit } from './exit.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/whip-publish.py', import.meta.url));
/** Debian's interpreter, which has the gi bindings (a pyenv or venv python3 may not). */
const PYTHON = '/usr/bin/python3';

const live = new Set<ChildProcess>();
onExit(() => {
  for (const child of live) child.kill('SIGKILL');
});

/** One line the script printed: `{event: 'created' | 'connection' | 'deleted' | 'error', ...}`. */
export type WhipEvent = { event: string } & Record<string, unknown>;

export interface WhipPublisher {
  readonly events: readonly WhipEvent[];
  /** Resolves with the first event that `match` takes, already printed or to come. */
  waitFor(what: string, match: (e: WhipEvent) => boolean, timeoutMs?: number): Promise<WhipEvent>;
  /** SIGKILL: the publisher vanishes without a DELETE, as a crash or a lost network would. */
  kill(): void;
  /** SIGTERM: the script sends DELETE and exits; resolves with its exit code. */
  stop(): Promise<number | null>;
  readonly stderr: string[];
}

export function startWhipPublisher(options: { url: string; token: string }): WhipPublisher {
  const child = spawn(
    PYTHON,
    [SCRIPT, '--url', options.url, '--token', options.token, '--local-address', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GST_DEBUG: '0' } },
  );
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  const events: WhipEvent[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as WhipEvent);
    } catch {
      stderr.push(line);
    }
    for (const wake of waiters) wake();
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    if (stderr.length < 200) stderr.push(line);
  });
  return {
    events,
    stderr,
    waitFor(what, match, timeoutMs = 20_000) {
      return new Promise<WhipEvent>((resolve, reject) => {
        const check = () => {
          const found = events.find(match);
          if (!found) return false;
          cleanup();
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for the WHIP publisher to ${what}; events: ${JSON.stringify(events)}; stderr: ${stderr.slice(-20).join('\n')}`,
            ),
          );
        }, timeoutMs);
        const wake = () => void check();
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
        check();
      });
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
