/**
 * Spawns real SFU node processes for integration and e2e tests. Every process started here
 * is killed when the test file ends (passing or failing), and on process exit as a last resort.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onExit } from './exit.js';
import { favourNode } from './node-priority.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIS = {
  node: fileURLToPath(new URL('../../packages/node/src/cli.ts', import.meta.url)),
  directory: fileURLToPath(new URL('../../packages/registry/src/directoryCli.ts', import.meta.url)),
};

const live = new Set<ChildProcess>();
onExit(() => {
  for (const child of live) child.kill('SIGKILL');
});

export interface NodeProcess {
  url: string;
  port: number;
  /** Where `/metrics` is: `url`, or the `SFU_METRICS_PORT` server's base URL when set. */
  metricsUrl: string;
  nodeId: string;
  region: string;
  pid: number;
  /** Every JSON log line the node printed so far. */
  logs: Record<string, unknown>[];
  /** Sends a signal and resolves when the process has exited (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartNodeOptions {
  /** Which process: an SFU node (default) or `sfu-directory`. */
  role?: 'node' | 'directory';
  /** Run with `--dev` (dev credentials, dev token endpoint); default true. Without it, set
   * SFU_API_KEY and SFU_API_SECRET in `env`. */
  dev?: boolean;
  nodeId?: string;
  region?: string;
  env?: Record<string, string>;
  args?: string[];
  /** Print the node's logs to stderr (for debugging a test). */
  verbose?: boolean;
  startTimeoutMs?: number;
}

export async function startNode(options: StartNodeOptions = {}): Promise<NodeProcess> {
  const args = [
    '--conditions=source',
    '--import',
    'tsx',
    CLIS[options.role ?? 'node'],
    ...(options.dev === false ? [] : ['--dev']),
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    ...(options.role === 'directory' ? [] : ['--rtc-host-addresses', '127.0.0.1']),
    ...(options.nodeId ? ['--node-id', options.nodeId] : []),
    ...(options.region ? ['--region', options.region] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, SFU_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own session, so that it can be given its own CPU share (node-priority.ts).
    detached: true,
  });
  live.add(child);
  if (child.pid !== undefined) favourNode(child.pid);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    stderr.push(d.toString());
    if (options.verbose) process.stderr.write(d);
  });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      if (options.verbose) process.stderr.write(`${line}\n`);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not a log line (a library printing to stdout): keep reading
      }
      logs.push(entry);
      if (entry.msg === 'node listening' || entry.msg === 'directory listening') resolve(entry);
    });
    void exited.then((code) =>
      reject(new Error(`node exited with ${code} before listening:\n${stderr.join('')}`)),
    );
  });
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`node did not listen within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  let listening: Record<string, unknown>;
  try {
    listening = await Promise.race([ready, timeout]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    const code = await exited;
    clearTimeout(killer);
    return code;
  };
  const url = String(listening.url);
  let metricsUrl = url;
  if (typeof listening.metricsPort === 'number') {
    const u = new URL(url);
    u.port = String(listening.metricsPort);
    metricsUrl = u.origin;
  }
  return {
    url,
    port: Number(listening.port),
    metricsUrl,
    nodeId: String(listening.nodeId),
    region: String(listening.region),
    pid: child.pid ?? -1,
    logs,
    stop,
    exited,
  };
}
