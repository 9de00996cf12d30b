/**
 * A network namespace whose downlink is shaped by the kernel, for tests of what a subscriber
 * on a slow network receives: a veth pair between the root namespace (where the SFU node runs)
 * and a fresh namespace (where Chromium runs), addresses in a private /30 unique to this run,
 * and `tc tbf` on the root end of the veth. What leaves the root end is what the namespace
 * receives, so tbf there shapes the downlink only; the uplink is not shaped.
 *
 *   const net = await createShapedNamespace({ rateKbit: 600 });   // root only
 *   startNode({ args: net.nodeArgs(await freePort()) })
 *   const browser = await openBrowser({ t, executablePath: net.chromiumPath,
 *     extraArgs: net.chromiumArgs(url) });
 *   await net.setRate(300); await net.unshape();
 *   await net.close();                                            // also on exit and SIGTERM
 *
 * Chromium runs inside through a wrapper script (`ip netns exec <ns> chromium "$@"`) used as
 * Playwright's executable: Playwright still talks to it over its pipe. `close()` kills
 * whatever still runs in the namespace, deletes the veth and the namespace and removes the
 * wrapper; the same happens synchronously when the test process exits or is killed.
 *
 * Needs root and iproute2 (`ip`, `tc` with the tbf qdisc).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CHROMIUM_PATH } from './browser.js';
import { onExit } from './exit.js';

const run = promisify(execFile);

/** 10.213.0.0/16, cut into /30s: not used on this host (the WAN lab uses 10.70 and 10.231). */
const SUBNET_PREFIX = [10, 213] as const;

export interface ShapeOptions {
  /** tbf rate, kbit/s. */
  rateKbit: number;
  /** tbf bucket size, bytes (default: 20 ms at the rate, at least 4 full-size packets). */
  burstBytes?: number;
  /** How long a packet may wait in tbf's queue before it is dropped (default 100 ms). */
  latencyMs?: number;
}

export interface ShapedNamespace {
  readonly name: string;
  /** The root end's address: where the namespace reaches the node. */
  readonly hostAddress: string;
  /** The namespace end's address. */
  readonly nsAddress: string;
  /** The wrapper that runs Chromium inside the namespace (Playwright's executablePath). */
  readonly chromiumPath: string;
  /** Chromium flags for a page at `origin` (an http origin at hostAddress is not "secure"). */
  chromiumArgs(origin: string): string[];
  /**
   * `sfu-node` flags for a node on `port` that the namespace reaches: it listens, gathers and
   * announces itself on the root end's address.
   */
  nodeArgs(port: number): string[];
  /** Shapes (or reshapes) the downlink into the namespace. */
  setRate(options: ShapeOptions | number): Promise<void>;
  /** Removes the shaper: the downlink is the veth's, unlimited. */
  unshape(): Promise<void>;
  /** The tbf statistics of the root end (`tc -s qdisc`), for failure reports. */
  stats(): Promise<string>;
  /** Removes everything; idempotent. */
  close(): Promise<void>;
}

async function sh(file: string, args: string[]): Promise<string> {
  try {
    return (await run(file, args)).stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** A /30 of SUBNET_PREFIX no interface of this host is in. */
function pickSubnet(): [string, string] {
  const used = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((a) => a?.address),
  );
  for (let attempt = 0; attempt < 100; attempt++) {
    const block = randomBytes(2).readUInt16BE(0) & 0x3fff; // 16384 /30s in a /16
    const third = block >> 6;
    const fourth = (block & 63) * 4;
    const host = `${SUBNET_PREFIX.join('.')}.${third}.${fourth + 1}`;
    const ns = `${SUBNET_PREFIX.join('.')}.${third}.${fourth + 2}`;
    if (!used.has(host) && !used.has(ns)) return [host, ns];
  }
  throw new Error('no free /30 in 10.213.0.0/16');
}

function tbfArgs(device: string, shape: ShapeOptions): string[] {
  const rateBytesPerSecond = (shape.rateKbit * 1000) / 8;
  const burst = shape.burstBytes ?? Math.max(4 * 1514, Math.round(rateBytesPerSecond * 0.02));
  return [
    'qdisc',
    'replace',
    'dev',
    device,
    'root',
    'tbf',
    'rate',
    `${shape.rateKbit}kbit`,
    'burst',
    String(burst),
    'latency',
    `${shape.latencyMs ?? 100}ms`,
  ];
}

/** Creates the namespace and the veth pair; shapes the downlink when `shape` is given. */
export async function createShapedNamespace(shape?: ShapeOptions): Promise<ShapedNamespace> {
  const id = randomBytes(3).toString('hex');
  const name = `gsfu-tc-${id}`;
  const hostDev = `gtc${id}h`; // interface names: at most 15 characters
  const nsDev = `gtc${id}n`;
  const [hostAddress, nsAddress] = pickSubnet();
  const dir = mkdtempSync(join(tmpdir(), 'geosfu-netns-'));
  const chromiumPath = join(dir, 'chromium');

  /** Synchronous: also the exit handler. Every step may find its object already gone. */
  const removeSync = () => {
    const quiet = { stdio: 'ignore' as const };
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' });
      for (const pid of pids.split('\n').map(Number)) {
        if (Number.isInteger(pid) && pid > 0) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
      }
    } catch {
      // no such namespace: nothing runs in it
    }
    try {
      execFileSync('ip', ['link', 'del', hostDev], quiet);
    } catch {
      // never created, or gone with the namespace
    }
    try {
      execFileSync('ip', ['netns', 'del', name], quiet);
    } catch {
      // never created
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let closed = false;
  onExit(() => {
    if (!closed) removeSync();
  });

  try {
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev]);
    await sh('ip', ['link', 'set', nsDev, 'netns', name]);
    await sh('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostDev]);
    await sh('ip', ['link', 'set', hostDev, 'up']);
    await sh('ip', ['-n', name, 'addr', 'add', `${nsAddress}/30`, 'dev', nsDev]);
    await sh('ip', ['-n', name, 'link', 'set', nsDev, 'up']);
    await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    if (shape) await sh('tc', tbfArgs(hostDev, shape));
    writeFileSync(
      chromiumPath,
      `#!/bin/sh\n# Chromium inside the shaped test namespace ${name}\nexec ip netns exec ${name} ${CHROMIUM_PATH} "$@"\n`,
    );
    chmodSync(chromiumPath, 0o755);
  } catch (error) {
    closed = true;
    removeSync();
    throw error;
  }

  return {
    name,
    hostAddress,
    nsAddress,
    chromiumPath,
    chromiumArgs: (origin) => [`--unsafely-treat-insecure-origin-as-secure=${origin}`],
    nodeArgs: (port) => [
      '--host',
      hostAddress,
      '--port',
      String(port),
      '--rtc-host-addresses',
      hostAddress,
      '--public-url',
      `http://${hostAddress}:${port}`,
    ],
    async setRate(options) {
      const s = typeof options === 'number' ? { rateKbit: options } : options;
      await sh('tc', tbfArgs(hostDev, s));
    },
    async unshape() {
      try {
        await sh('tc', ['qdisc', 'del', 'dev', hostDev, 'root']);
      } catch (error) {
        // Deleting the default qdisc (nothing shaped) fails with ENOENT: already unshaped.
        if (!/No such file|Cannot delete qdisc with handle of zero/.test(String(error)))
          throw error;
      }
    },
    stats: () => sh('tc', ['-s', 'qdisc', 'show', 'dev', hostDev]),
    async close() {
      if (closed) return;
      closed = true;
      removeSync();
    },
  };
}
