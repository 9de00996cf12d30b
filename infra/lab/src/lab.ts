/**
 * The WAN lab: one network namespace per host (`core`, `ams`, `sin`, `hcm`, `eu-client`,
 * `vn-client`) and a `router` namespace that runs the link emulator (router.ts).
 *
 *   host ns:   wan0 (VXLAN, overlay address)  --underlay veth u0-->  router ns: r<i>
 *              mgmt0 (management veth)        -------------------->  root ns: gsl<id>m<i>
 *
 * Overlay traffic between hosts is VXLAN-encapsulated by each host's kernel and sent to the
 * router process, which delays, jitters, drops or rate-limits it per link and forwards it to
 * the destination host. The management veths let the runner (in the root namespace) reach
 * each host's HTTP ports (node /metrics) directly; they carry no experiment traffic, and no
 * host has a route to another host's management address.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HostName } from './experiment/types.js';
import { destroyLab, ip, LAB_PREFIX, nsExec } from './netns.js';
import { HOST_NAMES, type ResolvedProfile } from './profiles.js';
import type { RouterConfig, RouterStats } from './router.js';

export interface LabHostAddress {
  name: HostName;
  /** Index of the host: its underlay and management subnets derive from it. */
  index: number;
  /** The address other hosts and the experiment use (behind the emulated links). */
  overlay: string;
}

/**
 * Overlay addresses. The clients' addresses are documentation addresses (RFC 5737) that the
 * repository's GeoIP test database places in Amsterdam and Ho Chi Minh City, so that routing
 * by GeoIP works in the lab as it does on the internet.
 */
export const LAB_HOSTS: Record<HostName, LabHostAddress> = {
  core: { name: 'core', index: 1, overlay: '10.70.0.2' },
  ams: { name: 'ams', index: 2, overlay: '10.70.0.11' },
  sin: { name: 'sin', index: 3, overlay: '10.70.0.12' },
  hcm: { name: 'hcm', index: 4, overlay: '10.70.0.13' },
  'eu-client': { name: 'eu-client', index: 5, overlay: '198.51.100.10' },
  'vn-client': { name: 'vn-client', index: 6, overlay: '198.51.100.140' },
};

const MAX_LABS = 64;
/** VXLAN adds 50 bytes (outer IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14) to each packet. */
const OVERLAY_MTU = 1450;
const VNI = '4242';

const macOf = (index: number) => `02:00:0a:46:00:${index.toString(16).padStart(2, '0')}`;
const underlayRouter = (index: number) => `172.31.${index}.1`;
const underlayHost = (index: number) => `172.31.${index}.2`;
const mgmtRoot = (id: number, index: number) => `10.231.${id}.${index * 4 + 1}`;
const mgmtHost = (id: number, index: number) => `10.231.${id}.${index * 4 + 2}`;

const HERE = fileURLToPath(new URL('.', import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** A sibling module as a runnable script: the .ts source under tsx, the built .js otherwise. */
export function siblingScript(name: string): { file: string; args: string[] } {
  const script = join(HERE, `${name}.${FROM_SOURCE ? 'ts' : 'js'}`);
  return { file: process.execPath, args: [...(FROM_SOURCE ? process.execArgv : []), script] };
}

export interface LabOptions {
  profile: ResolvedProfile;
  /** Router settings (see RouterConfig). */
  seed?: number;
  spinMs?: number;
  /** Log lines about what the lab does (default: none). */
  log?: (line: string) => void;
}

export interface LabProcess {
  child: ChildProcess;
  host: HostName | 'router';
  /** Sends `signal`, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export class WanLab {
  readonly id: number;
  readonly hosts = LAB_HOSTS;
  readonly #log: (line: string) => void;
  readonly #processes = new Set<LabProcess>();
  readonly #tmp: string;
  #guard: ChildProcess | undefined;
  #router: LabProcess | undefined;
  #routerLines: Interface | undefined;
  #destroyed = false;

  private constructor(id: number, log: (line: string) => void) {
    this.id = id;
    this.#log = log;
    this.#tmp = mkdtempSync(join(tmpdir(), `geosfu-lab${id}-`));
  }

  /** Builds the namespaces and links and starts the emulator. Undoes itself on failure. */
  static async create(options: LabOptions): Promise<WanLab> {
    const log = options.log ?? (() => {});
    const id = await allocateLabId();
    const lab = new WanLab(id, log);
    try {
      lab.#startGuard();
      await lab.#build();
      await lab.#startRouter(options);
      return lab;
    } catch (error) {
      await lab.destroy();
      throw error;
    }
  }

  /** The lab's own temp dir (the emulator's config); removed with the lab. */
  get tmpDir(): string {
    return this.#tmp;
  }

  ns(host: HostName | 'router'): string {
    return `${LAB_PREFIX}${this.id}-${host}`;
  }

  /** Where the root namespace reaches `host` (management veth), e.g. for /metrics. */
  managementAddress(host: HostName): string {
    return mgmtHost(this.id, LAB_HOSTS[host].index);
  }

  overlay(host: HostName): string {
    return LAB_HOSTS[host].overlay;
  }

  /** Starts `file args` inside `host`'s namespace. The lab stops it on destroy(). */
  spawn(
    host: HostName | 'router',
    file: string,
    args: string[],
    options: SpawnOptions = {},
  ): LabProcess {
    if (this.#destroyed) throw new Error('the lab is destroyed');
    // Every lab process runs at nice -15 (the lab needs root anyway): its timing is then the
    // emulated network's, not that of whatever else keeps this machine's cores busy. With
    // both cores held by busy loops, a clean 30 ms link measured a 34.8 ms median at nice 0.
    const child = spawn(
      'ip',
      ['netns', 'exec', this.ns(host), 'nice', '-n', '-15', file, ...args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        ...options,
      },
    );
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
      child.once('error', () => resolve(null));
    });
    const proc: LabProcess = {
      child,
      host,
      exited,
      stop: async (signal = 'SIGTERM', graceMs = 3_000) => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        return exited;
      },
    };
    this.#processes.add(proc);
    void exited.then(() => this.#processes.delete(proc));
    return proc;
  }

  /** Link counters and scheduling accuracy of the emulator. */
  async routerStats(timeoutMs = 5_000): Promise<RouterStats> {
    const router = this.#router;
    const lines = this.#routerLines;
    if (!router?.child.stdin || !lines) throw new Error('the emulator is not running');
    return new Promise<RouterStats>((resolve, reject) => {
      const timer = setTimeout(() => {
        lines.off('line', onLine);
        reject(new Error('the emulator did not answer "stats"'));
      }, timeoutMs);
      const onLine = (line: string) => {
        let message: { type?: string };
        try {
          message = JSON.parse(line) as { type?: string };
        } catch {
          return;
        }
        if (message.type !== 'stats') return;
        clearTimeout(timer);
        lines.off('line', onLine);
        resolve(message as RouterStats);
      };
      lines.on('line', onLine);
      router.child.stdin?.write('stats\n');
    });
  }

  resetRouterStats(): void {
    this.#router?.child.stdin?.write('reset\n');
  }

  /** Stops every process, deletes every namespace and veth. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#routerLines?.close();
    await Promise.all([...this.#processes].map((p) => p.stop('SIGTERM', 2_000)));
    await destroyLab(this.id);
    rmSync(this.#tmp, { recursive: true, force: true });
    // The guard would do the same had we died. Stop it rather than close its pipe: a closed
    // pipe would make it tear down the lab id, which a new lab may have claimed meanwhile.
    this.#guard?.kill('SIGTERM');
    this.#log(`lab ${this.id}: destroyed`);
  }

  #startGuard(): void {
    const { file, args } = siblingScript('guard');
    const guard = spawn(file, [...args, String(this.id), this.#tmp], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    guard.unref();
    this.#guard = guard;
  }

  async #build(): Promise<void> {
    const id = this.id;
    const router = this.ns('router');
    // Every argument is a single word: commands read best as one line each.
    const $ = (command: string) => ip(...command.split(' '));
    this.#log(`lab ${id}: building namespaces ${router} and ${HOST_NAMES.length} hosts`);
    await $(`-n ${router} link set lo up`);
    for (const name of HOST_NAMES) {
      const host = LAB_HOSTS[name];
      const ns = this.ns(name);
      const i = host.index;
      await $(`netns add ${ns}`);
      await nsExec(ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1');
      await nsExec(ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1');
      await $(`-n ${ns} link set lo up`);
      // Underlay: a veth to the router namespace.
      await $(`-n ${router} link add r${i} type veth peer name u0 netns ${ns}`);
      await $(`-n ${router} addr add ${underlayRouter(i)}/30 dev r${i}`);
      await $(`-n ${router} link set r${i} up`);
      await $(`-n ${ns} addr add ${underlayHost(i)}/30 dev u0`);
      await $(`-n ${ns} link set u0 up`);
      // Overlay: VXLAN whose only remote is the router.
      await $(
        `-n ${ns} link add wan0 address ${macOf(i)} type vxlan id ${VNI} remote ${underlayRouter(i)} local ${underlayHost(i)} dstport 4789 dev u0 nolearning`,
      );
      await $(`-n ${ns} link set wan0 mtu ${OVERLAY_MTU} up`);
      await $(`-n ${ns} addr add ${host.overlay}/32 dev wan0`);
      // The router forwards frames as they are: inner checksums must be complete.
      await nsExec(ns, 'ethtool', '-K', 'wan0', 'tx', 'off', 'tso', 'off', 'gso', 'off');
      for (const other of HOST_NAMES) {
        if (other === name) continue;
        const peer = LAB_HOSTS[other];
        await $(`-n ${ns} route add ${peer.overlay}/32 dev wan0`);
        await $(
          `-n ${ns} neigh add ${peer.overlay} lladdr ${macOf(peer.index)} dev wan0 nud permanent`,
        );
      }
      // Management: a veth to the root namespace.
      const rootEnd = `${LAB_PREFIX}${id}m${i}`;
      await $(`link add ${rootEnd} type veth peer name mgmt0 netns ${ns}`);
      await $(`addr add ${mgmtRoot(id, i)}/30 dev ${rootEnd}`);
      await $(`link set ${rootEnd} up`);
      await $(`-n ${ns} addr add ${mgmtHost(id, i)}/30 dev mgmt0`);
      await $(`-n ${ns} link set mgmt0 up`);
    }
  }

  async #startRouter(options: LabOptions): Promise<void> {
    const config: RouterConfig = {
      hosts: HOST_NAMES.map((name) => ({
        name,
        underlay: underlayHost(LAB_HOSTS[name].index),
        overlay: [LAB_HOSTS[name].overlay],
      })),
      links: options.profile.links.map((l) => ({ from: l.from, to: l.to, params: l.params })),
      seed: options.seed ?? 1,
      spinMs: options.spinMs ?? 1,
    };
    const configPath = join(this.#tmp, 'router.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const { file, args } = siblingScript('router');
    const router = this.spawn('router', file, [...args, configPath]);
    this.#router = router;
    const stderr: string[] = [];
    router.child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
    const stdout = router.child.stdout;
    if (!stdout) throw new Error('the emulator has no stdout');
    const lines = createInterface({ input: stdout });
    this.#routerLines = lines;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the emulator did not start in 15 s')),
        15_000,
      );
      lines.on('line', (line) => {
        if (line.includes('"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void router.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the emulator exited (${code}): ${stderr.join('').trim()}`));
      });
    });
    this.#log(`lab ${this.id}: emulator running (${config.links.length} directed links)`);
  }
}

/** Claims the lowest free lab id by creating its router namespace (atomic: fails if taken). */
async function allocateLabId(): Promise<number> {
  for (let id = 0; id < MAX_LABS; id++) {
    try {
      await ip('netns', 'add', `${LAB_PREFIX}${id}-router`);
      return id;
    } catch (error) {
      if (!String((error as Error).message).includes('exists')) throw error;
    }
  }
  throw new Error(`all ${MAX_LABS} lab ids are in use; run \`npm run lab -- down\``);
}
