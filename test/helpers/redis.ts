/**
 * A real redis-server per test suite, on a free port, with its own temp dir and no
 * persistence. The caller stops it in `after()`; a process 'exit' handler kills whatever is
 * left (a crashed test file), so no redis-server outlives the tests.
 *
 * Needs /usr/bin/redis-server (`apt-get install -y redis-server`; CI installs it).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { onExit } from './exit.js';
import { freePort } from './ports.js';

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? 'redis-server';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Pid of the current process (changes on restart). */
  readonly pid: number;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops the server if it runs and starts an empty one on the same port. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, commands hang. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, e.g. `['--rename-command', 'CONFIG', '""']`. */
  args?: string[];
  /** Print redis-server's log to stderr. */
  verbose?: boolean;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
onExit(() => {
  for (const { child, dir } of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Resolves when the server answers PING with PONG. */
async function ping(port: number, timeoutMs = 2_000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms`));
    }, timeoutMs);
    let reply = '';
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.includes('\r\n')) {
        clearTimeout(timer);
        socket.end();
        if (reply.startsWith('+PONG')) resolve();
        else reject(new Error(`redis answered PING with ${JSON.stringify(reply)}`));
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

interface Running {
  child: ChildProcess;
  dir: string;
  exited: Promise<void>;
}

async function launch(port: number, options: StartRedisOptions): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'geosfu-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--logfile',
    '',
    '--loglevel',
    'notice',
    ...(options.args ?? []),
  ];
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { child, dir };
  live.add(entry);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
      resolve();
    });
  });
  const output: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      const text = d.toString();
      output.push(text);
      if (options.verbose) process.stderr.write(text);
      if (text.includes('Ready to accept connections')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) =>
      reject(
        new Error(`cannot start ${REDIS_SERVER}: ${error.message}; apt-get install redis-server`),
      ),
    );
    void exited.then(() =>
      reject(new Error(`redis-server exited before it was ready:\n${output.join('')}`)),
    );
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('redis-server not ready within 10 s')), 10_000);
      }),
    ]);
    await ping(port);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { child, dir, exited };
}

async function kill(running: Running): Promise<void> {
  const { child } = running;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT'); // a paused server cannot handle SIGTERM
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await running.exited;
    clearTimeout(killer);
  }
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  let port = 0;
  let current: Running | undefined;
  // Another process may take the free port between our probe and redis binding it: try
  // a few ports before giving up.
  for (let attempt = 0; attempt < 5 && !current; attempt++) {
    port = await freePort();
    try {
      current = await launch(port, options);
    } catch (error) {
      if (attempt === 4 || !String(error).includes('Address already in use')) throw error;
    }
  }
  if (!current) throw new Error('unreachable');
  let running: Running | undefined = current;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return running?.child.pid ?? -1;
    },
    async stop() {
      if (!running) return;
      const r = running;
      running = undefined;
      await kill(r);
    },
    async restart() {
      if (running) {
        const r = running;
        running = undefined;
        await kill(r);
      }
      running = await launch(port, options);
    },
    pause() {
      running?.child.kill('SIGSTOP');
    },
    resume() {
      running?.child.kill('SIGCONT');
    },
  };
}

/** Pids of every redis-server on this machine, to check that a suite left none of its own. */
export function redisPids(): number[] {
  try {
    return execFileSync('pgrep', ['-x', 'redis-server'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/**
 * A plain ioredis client for a suite's own reads and writes (not a node's), connected. It
 * outlives the server's restarts: its errors then are expected, and the assertions that use
 * it wait with deadlines.
 */
export async function adminClient(server: RedisServer): Promise<Redis> {
  const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {
    // Expected while the server restarts (see above).
  });
  await client.connect();
  return client;
}

/** A suite's last step: drops its admin client, stops the server and checks it is gone. */
export async function stopSuiteRedis(
  server: RedisServer | undefined,
  admin: Redis | undefined,
): Promise<void> {
  admin?.disconnect();
  if (!server) return;
  const pid = server.pid;
  await server.stop();
  assert.ok(!redisPids().includes(pid), 'the suite leaves no redis-server behind');
}
