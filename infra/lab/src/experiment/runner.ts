/**
 * Runs the scenarios one after the other against a target (lab or real deployment): joins
 * the two peers' bots where the scenario says, samples the bots' own measurements, every
 * node's /metrics and this machine's CPU steal every interval, and summarises each scenario
 * over its measured window (after the joins and a warm-up).
 */
import { cpus, hostname, release } from 'node:os';
import { LATENCY_BUCKET_MS } from '@geosfu/client/bot';
import { type CpuTimes, cpuShares, readCpuTimes } from './cpu.js';
import { type PromSample, parsePromText, sumMetric } from './promText.js';
import { CLIENT_HOST, mediaPath } from './scenarios.js';
import type { BotHandle, ExperimentTarget, WorkerMessage } from './targets.js';
import { NODE_REGIONS } from './targets.js';
import type {
  CpuSample,
  ExperimentResult,
  JoinRecord,
  LinkSample,
  MediaKind,
  NodeRegion,
  NodeSample,
  Peer,
  ScenarioDefinition,
  ScenarioResult,
  StreamSample,
  StreamSummary,
} from './types.js';

export interface RunOptions {
  scenarios: readonly ScenarioDefinition[];
  durationMs: number;
  sampleIntervalMs: number;
  /** Excluded from the summaries after both peers have media. */
  warmupMs: number;
  videoBitrate: number;
  stealThresholdPercent: number;
  /** Names rooms and identities; two machines of a real run use the same one. */
  runId: string;
  /** Real runs on two machines: scenario k starts at startAt + k * (duration + slotGapMs). */
  startAt?: number;
  slotGapMs?: number;
  connectTimeoutMs?: number;
  /**
   * Run a scenario that failed (a join, a bot, a relay) again, up to this many times. The
   * report lists the failed attempts' errors; only the last attempt's samples are kept.
   */
  retries?: number;
  profile: string;
  onProgress?: (progress: Progress) => void;
  log?: (line: string) => void;
}

export interface Progress {
  scenario: ScenarioDefinition;
  index: number;
  count: number;
  phase: 'joining' | 'measuring' | 'stopping';
  elapsedMs: number;
  durationMs: number;
  /** Latest interval per receiving peer (video). */
  latest: Partial<Record<Peer, StreamSample>>;
}

const other = (peer: Peer): Peer => (peer === 'eu' ? 'vn' : 'eu');
export const identityOf = (peer: Peer, runId: string, scenario: number) =>
  `${peer}-${runId}-s${scenario}`;

export async function runExperiment(
  target: ExperimentTarget,
  options: RunOptions,
): Promise<ExperimentResult> {
  const log = options.log ?? (() => {});
  const startedAt = Date.now();
  const result: ExperimentResult = {
    version: 1,
    startedAt,
    finishedAt: startedAt,
    target: target.kind,
    profile: options.profile,
    durationPerScenarioMs: options.durationMs,
    sampleIntervalMs: options.sampleIntervalMs,
    stealThresholdPercent: options.stealThresholdPercent,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      kernel: release(),
      node: process.version,
      hostname: hostname(),
    },
    scenarios: [],
    samples: { streams: [], nodes: [], cpu: [], links: [] },
  };
  for (const [index, scenario] of options.scenarios.entries()) {
    if (options.startAt !== undefined) {
      const at = options.startAt + index * (options.durationMs + (options.slotGapMs ?? 30_000));
      const wait = at - Date.now();
      if (wait > 0) {
        log(`scenario ${scenario.id}: waiting ${Math.round(wait / 1000)} s for its slot`);
        await sleep(wait);
      }
    }
    log(`scenario ${scenario.id}: ${scenario.title}`);
    const retriedErrors: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const run = new ScenarioRun(target, options, scenario, index);
      const { summary, samples } = await run.execute();
      if (summary.errors.length === 0 || attempt > (options.retries ?? 0)) {
        result.scenarios.push({ ...summary, attempts: attempt, retriedErrors });
        for (const key of ['streams', 'nodes', 'cpu', 'links'] as const) {
          (result.samples[key] as unknown[]).push(...samples[key]);
        }
        break;
      }
      retriedErrors.push(...summary.errors.map((e) => `attempt ${attempt}: ${e}`));
      log(`scenario ${scenario.id}: attempt ${attempt} failed; running it again`);
    }
    result.finishedAt = Date.now();
  }
  return result;
}

interface Histogram {
  counts: Map<number, number>;
  n: number;
}

class ScenarioRun {
  readonly #target: ExperimentTarget;
  readonly #options: RunOptions;
  readonly #scenario: ScenarioDefinition;
  readonly #index: number;
  readonly #errors: string[] = [];
  readonly #bots = new Map<Peer, BotHandle>();
  readonly #joins = new Map<Peer, JoinRecord>();
  readonly #streams: StreamSample[] = [];
  /** Latency histograms of the measured window, per receiving peer and kind. */
  readonly #histograms = new Map<string, Histogram>();
  readonly #latest: Partial<Record<Peer, StreamSample>> = {};
  readonly #nodes: NodeSample[] = [];
  readonly #cpu: CpuSample[] = [];
  #measuredFrom = Number.POSITIVE_INFINITY;
  /** Set once the bots are being stopped: their exits are expected from then on. */
  #stopping = false;
  #startedAt = 0;

  constructor(
    target: ExperimentTarget,
    options: RunOptions,
    scenario: ScenarioDefinition,
    index: number,
  ) {
    this.#target = target;
    this.#options = options;
    this.#scenario = scenario;
    this.#index = index;
  }

  async execute(): Promise<{ summary: ScenarioResult; samples: ExperimentResult['samples'] }> {
    const s = this.#scenario;
    const o = this.#options;
    this.#startedAt = Date.now();
    this.#target.resetLinkStats();
    const before = await this.#scrapeAll();
    let cpuPrev = readCpuTimes();
    const nodePrev = new Map(before);
    try {
      await this.#join();
      const joinedAt = Date.now();
      this.#measuredFrom = joinedAt + o.warmupMs;
      const endAt = joinedAt + o.durationMs;
      for (let next = joinedAt + o.sampleIntervalMs; ; next += o.sampleIntervalMs) {
        const wait = Math.min(next, endAt) - Date.now();
        if (wait > 0) await sleep(wait);
        const now = Date.now();
        cpuPrev = this.#sampleCpu(now, cpuPrev);
        await this.#sampleNodes(now, nodePrev);
        this.#progress('measuring', now - joinedAt);
        if (now >= endAt) break;
      }
    } catch (error) {
      this.#errors.push((error as Error).message);
      log(this.#options, `scenario ${s.id}: ${(error as Error).message}`);
    } finally {
      this.#stopping = true;
      this.#progress('stopping', o.durationMs);
      await Promise.all([...this.#bots.values()].map((bot) => bot.stop()));
    }
    const after = await this.#scrapeAll();
    const links = await this.#target.linkStats(s.id).catch((): LinkSample[] => []);
    return {
      summary: this.#summarise(before, after),
      samples: { streams: this.#streams, nodes: this.#nodes, cpu: this.#cpu, links },
    };
  }

  async #join(): Promise<void> {
    const s = this.#scenario;
    const o = this.#options;
    const room = `exp-${o.runId}-s${s.id}`;
    this.#progress('joining', 0);
    const joins = this.#target.peers.map(async (peer) => {
      const where = s[peer];
      const identity = identityOf(peer, o.runId, s.id);
      const bot = this.#target.spawnBot(
        peer,
        {
          url: where === 'route' ? this.#target.routeUrl(peer) : this.#target.nodeUrl(where),
          route: where === 'route',
          room,
          identity,
          peerIdentity: identityOf(other(peer), o.runId, s.id),
          token: await this.#target.token(room, identity),
          videoBitrate: o.videoBitrate,
          audio: true,
          sampleIntervalMs: o.sampleIntervalMs,
          connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
        },
        s.id,
      );
      this.#bots.set(peer, bot);
      bot.onMessage((m) => this.#onWorkerMessage(peer, m));
      void bot.exited.then((code) => {
        if (!this.#stopping) {
          this.#errors.push(`${peer} bot exited (${code}) during the run: ${bot.stderrTail()}`);
        }
      });
      await this.#awaitJoin(peer, bot);
    });
    await Promise.all(joins);
  }

  #awaitJoin(peer: Peer, bot: BotHandle): Promise<void> {
    const timeoutMs = (this.#options.connectTimeoutMs ?? 20_000) + 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#recordJoin(peer, { ok: false, error: `no join after ${timeoutMs} ms` });
        reject(new Error(`${peer} bot: no join after ${timeoutMs} ms: ${bot.stderrTail()}`));
      }, timeoutMs);
      bot.onMessage((m) => {
        if (m.type === 'joined') {
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'error') {
          clearTimeout(timer);
          this.#recordJoin(peer, { ok: false, error: `${String(m.code)}: ${String(m.message)}` });
          reject(new Error(`${peer} bot failed: ${String(m.code)} ${String(m.message)}`));
        }
      });
      void bot.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${peer} bot exited (${code}) before joining: ${bot.stderrTail()}`));
      });
    });
  }

  #recordJoin(peer: Peer, update: Partial<JoinRecord>): void {
    const s = this.#scenario;
    const base: JoinRecord = this.#joins.get(peer) ?? {
      peer,
      node: s.expected[peer],
      ok: false,
      joinMs: null,
      firstMediaMs: null,
    };
    this.#joins.set(peer, { ...base, ...update });
  }

  #onWorkerMessage(peer: Peer, m: WorkerMessage): void {
    switch (m.type) {
      case 'joined': {
        const node = nodeRegionOf(m);
        this.#recordJoin(peer, {
          ok: true,
          joinMs: num(m.joinMs),
          ...(node ? { node } : {}),
        });
        if (node && node !== this.#scenario.expected[peer]) {
          this.#errors.push(
            `${peer} joined ${node}, expected ${this.#scenario.expected[peer]} for this scenario`,
          );
        }
        break;
      }
      case 'firstMedia':
        if (m.kind === 'video') this.#recordJoin(peer, { firstMediaMs: num(m.ms) });
        break;
      case 'sample':
        this.#onSample(peer, m);
        break;
      case 'error':
        this.#errors.push(`${peer} bot: ${String(m.code)} ${String(m.message)}`);
        break;
      default:
        break;
    }
  }

  #onSample(peer: Peer, m: WorkerMessage): void {
    const t = num(m.t) ?? Date.now();
    const streams = Array.isArray(m.streams) ? (m.streams as Record<string, unknown>[]) : [];
    for (const st of streams) {
      const kind = st.kind === 'audio' ? 'audio' : 'video';
      const latency = (st.latencyMs ?? {}) as Record<string, unknown>;
      const sample: StreamSample = {
        t,
        scenario: this.#scenario.id,
        peer,
        kind,
        intervalMs: num(st.intervalMs) ?? this.#options.sampleIntervalMs,
        packets: num(st.packets) ?? 0,
        bytes: num(st.bytes) ?? 0,
        bitrateKbps: num(st.bitrateKbps) ?? 0,
        lost: num(st.lost) ?? 0,
        expected: num(st.expected) ?? 0,
        latencyMs: {
          mean: num(latency.mean),
          p50: num(latency.p50),
          p95: num(latency.p95),
          max: num(latency.max),
        },
        latencySamples: num(st.latencySamples) ?? 0,
        jitterMs: num(st.jitterMs) ?? 0,
        clockOffsetMs: 0,
      };
      this.#streams.push(sample);
      if (kind === 'video') this.#latest[peer] = sample;
      // Only intervals that lie wholly inside the measured window count towards percentiles.
      if (t - sample.intervalMs >= this.#measuredFrom) {
        const h = this.#histogram(peer, kind);
        const buckets = (st.latencyHistogram ?? {}) as Record<string, unknown>;
        for (const [key, count] of Object.entries(buckets)) {
          const c = Number(count);
          if (!Number.isFinite(c)) continue;
          h.counts.set(Number(key), (h.counts.get(Number(key)) ?? 0) + c);
          h.n += c;
        }
      }
    }
  }

  #histogram(peer: Peer, kind: MediaKind): Histogram {
    const key = `${peer}/${kind}`;
    let h = this.#histograms.get(key);
    if (!h) {
      h = { counts: new Map(), n: 0 };
      this.#histograms.set(key, h);
    }
    return h;
  }

  #sampleCpu(now: number, prev: CpuTimes | undefined): CpuTimes | undefined {
    const cur = readCpuTimes();
    if (prev && cur) {
      this.#cpu.push({ t: now, scenario: this.#scenario.id, ...cpuShares(prev, cur) });
    }
    return cur;
  }

  async #scrapeAll(): Promise<Map<NodeRegion, PromSample[]>> {
    const out = new Map<NodeRegion, PromSample[]>();
    await Promise.all(
      NODE_REGIONS.map(async (region) => {
        const url = this.#target.metricsUrl(region);
        if (!url) return;
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          out.set(region, parsePromText(await res.text()));
        } catch (error) {
          this.#errors.push(`metrics of ${region} (${url}): ${(error as Error).message}`);
        }
      }),
    );
    return out;
  }

  async #sampleNodes(now: number, prev: Map<NodeRegion, PromSample[]>): Promise<void> {
    const current = await this.#scrapeAll();
    for (const [node, m] of current) {
      const p = prev.get(node) ?? [];
      const dSum = delta(m, p, 'sfu_redis_roundtrip_seconds_sum');
      const dCount = delta(m, p, 'sfu_redis_roundtrip_seconds_count');
      this.#nodes.push({
        t: now,
        scenario: this.#scenario.id,
        node,
        participants: sumMetric(m, 'sfu_participants'),
        relayLinks: sumMetric(m, 'sfu_relay_links'),
        relayPacketsIn: sumMetric(m, 'sfu_packets_total', { path: 'relay', direction: 'in' }),
        relayPacketsOut: sumMetric(m, 'sfu_packets_total', { path: 'relay', direction: 'out' }),
        clientPacketsIn: sumMetric(m, 'sfu_packets_total', { path: 'client', direction: 'in' }),
        clientPacketsOut: sumMetric(m, 'sfu_packets_total', { path: 'client', direction: 'out' }),
        redisRttMs: dCount > 0 ? round((1000 * dSum) / dCount, 2) : null,
      });
      prev.set(node, m);
    }
  }

  #progress(phase: Progress['phase'], elapsedMs: number): void {
    this.#options.onProgress?.({
      scenario: this.#scenario,
      index: this.#index,
      count: this.#options.scenarios.length,
      phase,
      elapsedMs,
      durationMs: this.#options.durationMs,
      latest: { ...this.#latest },
    });
  }

  #summarise(
    before: Map<NodeRegion, PromSample[]>,
    after: Map<NodeRegion, PromSample[]>,
  ): ScenarioResult {
    const s = this.#scenario;
    const joins = [...this.#joins.values()];
    const nodes = {
      eu: this.#joins.get('eu')?.node ?? s.expected.eu,
      vn: this.#joins.get('vn')?.node ?? s.expected.vn,
    };
    const streams: StreamSummary[] = [];
    for (const peer of this.#target.peers) {
      for (const kind of ['video', 'audio'] as const) {
        streams.push(this.#streamSummary(peer, kind, nodes));
      }
    }
    let setupCount = 0;
    let setupSum = 0;
    let failures = 0;
    let relayPackets = 0;
    const redisRttMs: Partial<Record<NodeRegion, number | null>> = {};
    for (const region of NODE_REGIONS) {
      const a = after.get(region);
      const b = before.get(region) ?? [];
      if (!a) continue;
      setupCount += delta(a, b, 'sfu_relay_setup_duration_seconds_count');
      setupSum += delta(a, b, 'sfu_relay_setup_duration_seconds_sum');
      for (const reason of ['link-failed', 'closed-by-peer']) {
        failures += delta(a, b, 'sfu_relay_link_closes_total', { reason });
      }
      relayPackets += delta(a, b, 'sfu_packets_total', { path: 'relay', direction: 'out' });
      const c = delta(a, b, 'sfu_redis_roundtrip_seconds_count');
      redisRttMs[region] =
        c > 0 ? round((1000 * delta(a, b, 'sfu_redis_roundtrip_seconds_sum')) / c, 2) : null;
    }
    const threshold = this.#options.stealThresholdPercent;
    const steals = this.#cpu.map((c) => c.stealPercent);
    const high = steals.filter((x) => x > threshold).length;
    return {
      id: s.id,
      title: s.title,
      path: mediaPath('eu', nodes),
      nodes,
      relayed: nodes.eu !== nodes.vn,
      startedAt: this.#startedAt,
      endedAt: Date.now(),
      measuredFrom: Number.isFinite(this.#measuredFrom) ? this.#measuredFrom : this.#startedAt,
      streams,
      joins,
      relaySetups: {
        count: setupCount,
        meanMs: setupCount > 0 ? round((1000 * setupSum) / setupCount, 1) : null,
        failures,
      },
      relayPackets,
      redisRttMs,
      steal: {
        avgPercent: round(mean(steals) ?? 0, 2),
        maxPercent: round(Math.max(0, ...steals), 2),
        highIntervals: high,
        intervals: steals.length,
        // A tenth of the intervals stalled: the tails are the VM's, not the network's.
        flagged: steals.length > 0 && high / steals.length > 0.1,
      },
      errors: [...new Set(this.#errors)],
    };
  }

  /** Summary of what `peer` received of `kind` (published by the other peer). */
  #streamSummary(
    peer: Peer,
    kind: MediaKind,
    nodes: { eu: NodeRegion; vn: NodeRegion },
  ): StreamSummary {
    const window = this.#streams.filter(
      (x) => x.peer === peer && x.kind === kind && x.t - x.intervalMs >= this.#measuredFrom,
    );
    const bytes = window.reduce((a, x) => a + x.bytes, 0);
    const ms = window.reduce((a, x) => a + x.intervalMs, 0);
    const lost = window.reduce((a, x) => a + x.lost, 0);
    const expected = window.reduce((a, x) => a + x.expected, 0);
    const n = window.reduce((a, x) => a + x.latencySamples, 0);
    const latencySum = window.reduce((a, x) => a + (x.latencyMs.mean ?? 0) * x.latencySamples, 0);
    const h = this.#histograms.get(`${peer}/${kind}`);
    const path = mediaPath(other(peer), nodes);
    return {
      peer,
      kind,
      avgBitrateKbps: ms > 0 ? round((bytes * 8) / ms, 1) : 0,
      latencyMs: {
        mean: n > 0 ? round(latencySum / n, 2) : null,
        p50: h ? histogramPercentile(h, 50) : null,
        p95: h ? histogramPercentile(h, 95) : null,
        p99: h ? histogramPercentile(h, 99) : null,
      },
      avgJitterMs: round(mean(window.map((x) => x.jitterMs)) ?? 0, 2),
      lossPercent: expected > 0 ? round((100 * lost) / expected, 3) : 0,
      packets: window.reduce((a, x) => a + x.packets, 0),
      configuredDelayMs: this.#target.configuredDelayMs(path),
    };
  }
}

/** The bucket (upper edge, ms) holding the p-th percentile. */
export function histogramPercentile(h: Histogram, p: number): number | null {
  if (h.n === 0) return null;
  const rank = Math.ceil((p / 100) * h.n);
  let seen = 0;
  for (const key of [...h.counts.keys()].sort((a, b) => a - b)) {
    seen += h.counts.get(key) ?? 0;
    if (seen >= rank) return round(key + LATENCY_BUCKET_MS, 2);
  }
  return null;
}

function delta(
  a: readonly PromSample[],
  b: readonly PromSample[],
  name: string,
  match: Record<string, string> = {},
): number {
  return sumMetric(a, name, match) - sumMetric(b, name, match);
}

function nodeRegionOf(m: WorkerMessage): NodeRegion | undefined {
  for (const key of ['region', 'node']) {
    const v = m[key];
    if (typeof v !== 'string') continue;
    for (const r of NODE_REGIONS) if (v === r || v.endsWith(`-${r}`)) return r;
  }
  return undefined;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function mean(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

function log(options: RunOptions, line: string): void {
  options.log?.(line);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export { CLIENT_HOST };
