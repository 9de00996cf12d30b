/**
 * A real redis-server per test suite, on a free port, with its own temp dir and no
 * persistence. The caller stops it in `after()`; a process 'exit' handler kills whatever is
 * left (a crashed test file), so no redis-server outlives the tests.
 *
 * Needs /usr/bin/redis-server (`apt-get install -y redis-server`; CI installs it).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { onExit } from './exit.js';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? 'redis-server';
const REDIS_SENTINEL = process.env.REDIS_SENTINEL_BIN ?? 'redis-sentinel';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Pid of the current process (changes on restart). */
  readonly pid: number;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the server if it runs and starts an empty one on the same port, with `options`
   * instead of the first start's if given (e.g. `--replicaof` for a failed master's return).
   */
  restart(options?: StartRedisOptions): Promise<void>;
  /** Kills the server at once (SIGKILL: no goodbye to clients or replicas); resolves on exit. */
  crash(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, commands hang. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
}

export interface StartRedisOptions {
  /** `sentinel`: redis-sentinel with a `sentinel.conf` written from `sentinelConfig`. */
  mode?: 'server' | 'sentinel';
  /** Lines of the sentinel's config file (it rewrites the file, so it must be its own). */
  sentinelConfig?: string[];
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
  const sentinel = options.mode === 'sentinel';
  const head: string[] = [];
  if (sentinel) {
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, `${(options.sentinelConfig ?? []).join('\n')}\n`);
    head.push(conf);
  }
  const args = [
    ...head,
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    ...(sentinel ? [] : ['--save', '', '--appendonly', 'no']),
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
  const bin = sentinel ? REDIS_SENTINEL : REDIS_SERVER;
  // A sentinel is ready once it monitors its master; a server once it accepts connections.
  const readyLine = sentinel ? '+monitor master' : 'Ready to accept connections';
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (text.includes(readyLine)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) =>
      reject(
        new Error(
          `cannot start ${bin}: ${error.message}; apt-get install redis-server redis-sentinel`,
        ),
      ),
    );
    void exited.then(() =>
      reject(new Error(`${bin} exited before it was ready:\n${output.join('')}`)),
    );
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${bin} not ready within 10 s`)), 10_000);
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
    async restart(next = options) {
      if (running) {
        const r = running;
        running = undefined;
        await kill(r);
      }
      running = await launch(port, next);
    },
    async crash() {
      if (!running) return;
      const r = running;
      running = undefined;
      r.child.kill('SIGKILL');
      await r.exited;
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

/**
 * Redis Sentinel on loopback: a primary, a replica and three sentinels (quorum 2) watching
 * it as {@link SENTINEL_MASTER}, every one on a free port, all stopped by `stop()` (and by
 * the exit handler above if the test dies). Resolves once every sentinel knows the replica
 * and the two other sentinels, so that a failover can start at once.
 */
export interface SentinelSet {
  readonly masterName: string;
  /** The sentinels as REDIS_SENTINELS takes them: `127.0.0.1:p1,127.0.0.1:p2,...`. */
  readonly addresses: string;
  /** The data servers, the first primary first; `restart` may add one as a replica. */
  readonly servers: readonly RedisServer[];
  /** The port every sentinel names as master now, or undefined while they disagree. */
  masterPort(): Promise<number | undefined>;
  /** Waits until every sentinel names a master other than `oldPort`; returns its port. */
  waitForPromotion(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Waits until every sentinel sees `count` healthy replicas and two other sentinels. */
  waitForHealthy(replicas: number, timeoutMs?: number): Promise<void>;
  /** `SENTINEL FAILOVER` on one sentinel (retried while it has no good replica yet). */
  failover(timeoutMs?: number): Promise<void>;
  /** A client of the server on `port`, for a suite's reads (closed by `stop`). */
  client(port: number): Promise<Redis>;
  stop(): Promise<void>;
}

export const SENTINEL_MASTER = 'sfumaster';

export async function startSentinelSet(): Promise<SentinelSet> {
  const servers: RedisServer[] = [];
  const sentinels: RedisServer[] = [];
  const clients: Redis[] = [];
  const stop = async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.allSettled([...sentinels, ...servers].map((s) => s.stop()));
  };
  const connect = async (port: number) => {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
    });
    client.on('error', () => {
      // Expected: the servers are killed and promoted under the suite's clients.
    });
    clients.push(client);
    await client.connect();
    return client;
  };
  try {
    const primary = await startRedis();
    servers.push(primary);
    servers.push(await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] }));
    const admin = await connect(primary.port);
    await waitUntil('the replica to sync', async () =>
      /slave0:.*state=online/.test(await admin.info('replication')) ? true : undefined,
    );
    for (let i = 0; i < 3; i++) {
      sentinels.push(
        await startRedis({
          mode: 'sentinel',
          sentinelConfig: [
            `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary.port} 2`,
            // Short, so that the test is quick; margins for a loaded 2-core machine.
            `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1500`,
            `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          ],
        }),
      );
    }
    const sentinelClients = await Promise.all(sentinels.map((s) => connect(s.port)));
    const ask = async (client: Redis, ...args: string[]) => client.call('SENTINEL', ...args);
    const masterPort = async () => {
      const ports = await Promise.all(
        sentinelClients.map(async (c) => {
          const reply = (await ask(c, 'get-master-addr-by-name', SENTINEL_MASTER).catch(
            () => null,
          )) as [string, string] | null;
          return reply ? Number(reply[1]) : undefined;
        }),
      );
      return ports.every((p) => p !== undefined && p === ports[0]) ? ports[0] : undefined;
    };
    const healthy = async (replicas: number) => {
      for (const c of sentinelClients) {
        const list = (await ask(c, 'replicas', SENTINEL_MASTER)) as string[][];
        const good = list.filter((r) => {
          const flags = r[r.indexOf('flags') + 1] ?? '';
          return flags === 'slave' && r[r.indexOf('master-link-status') + 1] === 'ok';
        });
        if (good.length < replicas) return false;
        if (((await ask(c, 'sentinels', SENTINEL_MASTER)) as unknown[]).length < 2) return false;
      }
      return true;
    };
    const set: SentinelSet = {
      masterName: SENTINEL_MASTER,
      addresses: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      servers,
      masterPort,
      async waitForPromotion(oldPort, timeoutMs = 20_000) {
        return waitUntil(
          `the sentinels to promote a new master instead of :${oldPort}`,
          async () => {
            const port = await masterPort();
            return port !== undefined && port !== oldPort ? port : undefined;
          },
          timeoutMs,
        );
      },
      async waitForHealthy(replicas, timeoutMs = 30_000) {
        await waitUntil(
          `every sentinel to see ${replicas} healthy replica(s) and its peers`,
          async () => ((await healthy(replicas)) ? true : undefined),
          timeoutMs,
          200,
        );
      },
      async failover(timeoutMs = 20_000) {
        const [first] = sentinelClients;
        if (!first) throw new Error('no sentinel');
        let last = '';
        await waitUntil(
          'SENTINEL FAILOVER to be accepted',
          async () => {
            try {
              await ask(first, 'failover', SENTINEL_MASTER);
              return true;
            } catch (error) {
              last = String(error); // NOGOODSLAVE or INPROG: not ready yet
              return undefined;
            }
          },
          timeoutMs,
          250,
          () => last,
        );
      },
      client: connect,
      stop,
    };
    await set.waitForHealthy(1);
    return set;
  } catch (error) {
    await stop();
    throw error;
  }
}
