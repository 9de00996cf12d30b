/**
 * Where an experiment runs. The lab target builds the emulated WAN (lab.ts), starts Redis in
 * `core` and the three nodes in `ams`, `sin` and `hcm`, and runs the peers' bots in the client
 * namespaces. The real target takes node URLs of a real deployment and runs the bots of the
 * peers this machine stands for as plain processes. The runner does the same with both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TokenService } from '@geosfu/common';
import { LAB_HOSTS, siblingScript, WanLab } from '../lab.js';
import { findLink, loadProfileFile, type ResolvedProfile, resolveProfile } from '../profiles.js';
import { CLIENT_HOST } from './scenarios.js';
import type { HostName, LinkSample, NodeRegion, Peer, ScenarioId } from './types.js';

export const NODE_REGIONS: readonly NodeRegion[] = ['ams', 'sin', 'hcm'];
const NODE_PORT = 7880;
const REDIS_PORT = 6379;

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const GEOIP_DB = `${ROOT}test/fixtures/geoip/geosfu-city-test.mmdb`;

/** What the bot worker (botWorker.ts) takes as its JSON argument. */
export interface BotWorkerConfig {
  url: string;
  route: boolean;
  room: string;
  identity: string;
  peerIdentity: string;
  token?: string;
  hostAddresses?: string[];
  videoBitrate: number;
  audio: boolean;
  sampleIntervalMs: number;
  connectTimeoutMs: number;
}

/** A line the bot worker printed (see botWorker.ts). */
export type WorkerMessage = { type: string } & Record<string, unknown>;

export interface BotHandle {
  peer: Peer;
  readonly messages: WorkerMessage[];
  onMessage(listener: (message: WorkerMessage) => void): void;
  /** Asks the worker to print its final stats and exit; kills it after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
  stderrTail(): string;
}

export interface ExperimentTarget {
  kind: 'lab' | 'real';
  /** For the report: the profile name or the deployment. */
  description: string;
  /** The peers this process runs bots for. */
  peers: readonly Peer[];
  /** The URL a bot pinned to `region` connects to. */
  nodeUrl(region: NodeRegion): string;
  /** The URL a bot asks `/v1/route` when GeoIP routing decides. */
  routeUrl(peer: Peer): string;
  /** Where this process reads a node's /metrics; undefined when it cannot. */
  metricsUrl(region: NodeRegion): string | undefined;
  /** An access token for the bot, or undefined to let it use the node's dev endpoint. */
  token(room: string, identity: string): Promise<string | undefined>;
  spawnBot(peer: Peer, config: BotWorkerConfig, scenario: ScenarioId): BotHandle;
  /** Sum of the configured one-way delays along `path` (lab only). */
  configuredDelayMs(path: HostName[]): number | null;
  /** The emulator's per-link counters since the last reset (lab only). */
  linkStats(scenario: ScenarioId): Promise<LinkSample[]>;
  resetLinkStats(): void;
  close(): Promise<void>;
}

function botWorkerCommand(config: BotWorkerConfig): { file: string; args: string[] } {
  const { file, args } = siblingScript('experiment/botWorker');
  return { file, args: [...args, JSON.stringify(config)] };
}

function handleFor(peer: Peer, child: ChildProcess): BotHandle {
  const messages: WorkerMessage[] = [];
  const listeners: ((m: WorkerMessage) => void)[] = [];
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    stderr.push(d.toString());
    if (stderr.length > 50) stderr.shift();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
    child.once('error', () => resolve(null));
  });
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let message: WorkerMessage;
      try {
        message = JSON.parse(line) as WorkerMessage;
      } catch {
        return;
      }
      if (typeof message?.type !== 'string') return;
      messages.push(message);
      for (const l of listeners) l(message);
    });
  }
  return {
    peer,
    messages,
    onMessage: (l) => listeners.push(l),
    exited,
    stderrTail: () => stderr.join('').slice(-2_000),
    stop: async (graceMs = 10_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin?.write('stop\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

export interface LabTargetOptions {
  profile: string;
  profilesFile?: string | URL;
  seed?: number;
  log?: (line: string) => void;
  /** Write each node's and Redis's output to `<logDir>/<host>.log`. */
  logDir?: string;
}

/** The emulated WAN on this machine. */
export class LabTarget implements ExperimentTarget {
  readonly kind = 'lab' as const;
  readonly peers: readonly Peer[] = ['eu', 'vn'];
  readonly description: string;
  readonly lab: WanLab;
  readonly profile: ResolvedProfile;

  readonly #logDir: string | undefined;

  private constructor(lab: WanLab, profile: ResolvedProfile, logDir: string | undefined) {
    this.lab = lab;
    this.profile = profile;
    this.#logDir = logDir;
    this.description = `lab, link profile "${profile.name}" v${profile.version}`;
  }

  static async start(options: LabTargetOptions): Promise<LabTarget> {
    const log = options.log ?? (() => {});
    const profile = resolveProfile(loadProfileFile(options.profilesFile), options.profile);
    const lab = await WanLab.create({ profile, seed: options.seed, log });
    if (options.logDir) mkdirSync(options.logDir, { recursive: true });
    const target = new LabTarget(lab, profile, options.logDir);
    try {
      await target.#startRedis();
      log('redis-server running in core');
      await Promise.all(NODE_REGIONS.map((region) => target.#startNode(region)));
      log(`nodes running: ${NODE_REGIONS.join(', ')}`);
      return target;
    } catch (error) {
      await lab.destroy();
      throw error;
    }
  }

  nodeUrl(region: NodeRegion): string {
    return `http://${LAB_HOSTS[region].overlay}:${NODE_PORT}`;
  }

  /** Clients ask the Singapore node: any node answers by GeoIP, not by where it is itself. */
  routeUrl(): string {
    return this.nodeUrl('sin');
  }

  metricsUrl(region: NodeRegion): string {
    return `http://${this.lab.managementAddress(region)}:${NODE_PORT}/metrics`;
  }

  async token(): Promise<undefined> {
    return undefined;
  }

  spawnBot(peer: Peer, config: BotWorkerConfig): BotHandle {
    const host = CLIENT_HOST[peer];
    const { file, args } = botWorkerCommand({
      ...config,
      hostAddresses: [LAB_HOSTS[host].overlay],
    });
    return handleFor(peer, this.lab.spawn(host, file, args).child);
  }

  configuredDelayMs(path: HostName[]): number | null {
    let sum = 0;
    for (let i = 1; i < path.length; i++) {
      const from = path[i - 1];
      const to = path[i];
      if (!from || !to) return null;
      const link = findLink(this.profile, from, to);
      if (!link) return null;
      sum += link.params.delayMs;
    }
    return sum;
  }

  async linkStats(scenario: ScenarioId): Promise<LinkSample[]> {
    const stats = await this.lab.routerStats();
    return stats.links
      .filter((l) => l.forwarded + l.lost + l.queueDropped > 0)
      .map((l) => ({
        scenario,
        from: l.from as HostName,
        to: l.to as HostName,
        forwarded: l.forwarded,
        lost: l.lost,
        queueDropped: l.queueDropped,
        lateUsP50: l.lateUsP50 ?? 0,
        lateUsP99: l.lateUsP99 ?? 0,
      }));
  }

  resetLinkStats(): void {
    this.lab.resetRouterStats();
  }

  async close(): Promise<void> {
    await this.lab.destroy();
  }

  async #startRedis(): Promise<void> {
    const redis = this.lab.spawn('core', 'redis-server', [
      '--bind',
      LAB_HOSTS.core.overlay,
      '--port',
      String(REDIS_PORT),
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      // The nodes' keyspace notifications are switched on by the nodes themselves.
    ]);
    await waitForOutput(redis.child, /Ready to accept connections/, 'redis-server', 15_000);
    this.#keepLog('core', redis.child);
  }

  /** Appends a process's output to `<logDir>/<host>.log`, or discards it. */
  #keepLog(host: HostName, child: ChildProcess): void {
    if (!this.#logDir) {
      child.stdout?.resume();
      return;
    }
    const file = createWriteStream(join(this.#logDir, `${host}.log`), { flags: 'a' });
    child.stdout?.pipe(file);
    child.stderr?.pipe(file);
  }

  async #startNode(region: NodeRegion): Promise<void> {
    const overlay = LAB_HOSTS[region].overlay;
    const cli = FROM_SOURCE
      ? [...process.execArgv, `${ROOT}packages/node/src/cli.ts`]
      : [`${ROOT}packages/node/dist/cli.js`];
    const node = this.lab.spawn(
      region,
      process.execPath,
      [
        ...cli,
        '--dev',
        '--region',
        region,
        '--node-id',
        region,
        '--host',
        '0.0.0.0',
        '--port',
        String(NODE_PORT),
        '--public-url',
        this.nodeUrl(region),
        '--rtc-host-addresses',
        overlay,
        '--redis-url',
        `redis://${LAB_HOSTS.core.overlay}:${REDIS_PORT}`,
        '--geoip-db',
        GEOIP_DB,
      ],
      { env: { ...process.env, SFU_LOG_LEVEL: process.env.SFU_LOG_LEVEL ?? 'warn' } },
    );
    const stderr: string[] = [];
    node.child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
    this.#keepLog(region, node.child);
    const url = `http://${this.lab.managementAddress(region)}:${NODE_PORT}/readyz`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (node.child.exitCode !== null) {
        throw new Error(
          `node ${region} exited (${node.child.exitCode}): ${stderr.join('').slice(-2000)}`,
        );
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`node ${region} not ready after 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export interface RealTargetOptions {
  /** Node base URLs by region. */
  nodes: Record<NodeRegion, string>;
  /** The URL bots ask `/v1/route` in the GeoIP scenario (a directory or any node). */
  routeUrl?: string;
  /** /metrics URLs by region when they differ from `<node>/metrics` (SFU_METRICS_PORT). */
  metrics?: Partial<Record<NodeRegion, string>>;
  /** The peers this machine runs (one per machine in a real experiment). */
  peers: readonly Peer[];
  /** Local addresses the bots use for ICE (a multi-homed client machine); default: all. */
  hostAddresses?: string[];
  /** API key and secret to mint tokens; without them bots use the nodes' dev endpoint. */
  apiKey?: string;
  apiSecret?: string;
  description?: string;
}

/** A real deployment: the same measurements without namespaces. */
export class RealTarget implements ExperimentTarget {
  readonly kind = 'real' as const;
  readonly peers: readonly Peer[];
  readonly description: string;
  readonly #options: RealTargetOptions;
  readonly #tokens: TokenService | undefined;
  readonly #children = new Set<ChildProcess>();

  constructor(options: RealTargetOptions) {
    this.#options = options;
    this.peers = options.peers;
    this.description =
      options.description ?? `real deployment (${Object.values(options.nodes).join(', ')})`;
    this.#tokens =
      options.apiKey && options.apiSecret
        ? new TokenService(options.apiKey, options.apiSecret)
        : undefined;
  }

  nodeUrl(region: NodeRegion): string {
    return this.#options.nodes[region];
  }

  routeUrl(): string {
    return this.#options.routeUrl ?? this.#options.nodes.ams;
  }

  metricsUrl(region: NodeRegion): string | undefined {
    return (
      this.#options.metrics?.[region] ?? `${this.#options.nodes[region].replace(/\/$/, '')}/metrics`
    );
  }

  async token(room: string, identity: string): Promise<string | undefined> {
    return this.#tokens?.mint({ room, identity, ttlSeconds: 24 * 3600 });
  }

  spawnBot(peer: Peer, config: BotWorkerConfig): BotHandle {
    const { file, args } = botWorkerCommand({
      ...config,
      ...(this.#options.hostAddresses ? { hostAddresses: this.#options.hostAddresses } : {}),
    });
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return handleFor(peer, child);
  }

  configuredDelayMs(): null {
    return null;
  }

  async linkStats(): Promise<LinkSample[]> {
    return [];
  }

  resetLinkStats(): void {}

  async close(): Promise<void> {
    for (const child of this.#children) child.kill('SIGTERM');
  }
}

function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`${what} did not start: ${seen.slice(-500)}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}): ${seen.slice(-500)}`));
    });
  });
}
