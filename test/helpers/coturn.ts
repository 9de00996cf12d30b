/**
 * A real coturn (Debian's `turnserver`) per test suite, started with the repository's
 * infra/coturn/turnserver.conf and the per-host options on the command line, as production
 * runs it: a shared secret (use-auth-secret), listening on one address on free ports, relay
 * ports from a small range, its own temp dir. Stopped in `after()`; an exit handler kills
 * whatever is left.
 *
 * Needs /usr/bin/turnserver (`apt-get install -y coturn`; .ci/run installs it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit } from './exit.js';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

const CONF = fileURLToPath(new URL('../../infra/coturn/turnserver.conf', import.meta.url));

export interface Coturn {
  readonly address: string;
  readonly port: number;
  readonly secret: string;
  /** `turn:` URLs for UDP and TCP (no TLS: the test server has no certificate). */
  readonly urls: string[];
  /** What coturn printed so far. */
  log(): string;
  stop(): Promise<void>;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
onExit(() => {
  for (const { child, dir } of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts coturn on `address`. `peers`: addresses it may relay to although the config denies
 * private ranges (the node under test on a veth or loopback).
 */
export async function startCoturn(address: string, peers: string[]): Promise<Coturn> {
  const dir = mkdtempSync(join(tmpdir(), 'geosfu-coturn-'));
  const port = await freePort();
  const secret = randomBytes(24).toString('hex');
  // Relay ports: a random 200-port block high in the ephemeral range, so two suites (or
  // other tests' sockets) rarely meet; coturn skips a port it cannot bind.
  const minPort = 50_000 + randomInt(0, 70) * 200;
  const args = [
    '-c',
    CONF,
    `--listening-ip=${address}`,
    `--relay-ip=${address}`,
    `--listening-port=${port}`,
    `--min-port=${minPort}`,
    `--max-port=${minPort + 199}`,
    `--static-auth-secret=${secret}`,
    '--realm=geosfu.test',
    '--no-tls',
    `--userdb=${join(dir, 'turndb')}`,
    `--pidfile=${join(dir, 'turnserver.pid')}`,
    ...peers.map((p) => `--allowed-peer-ip=${p}`),
  ];
  const child = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { child, dir };
  live.add(entry);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    live.delete(entry);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      `coturn listening on ${address}:${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`turnserver exited:\n${output}`);
        return (await tcpOpen(address, port)) ? true : undefined;
      },
      10_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    address,
    port,
    secret,
    urls: [`turn:${address}:${port}?transport=udp`, `turn:${address}:${port}?transport=tcp`],
    log: () => output,
    stop,
  };
}
