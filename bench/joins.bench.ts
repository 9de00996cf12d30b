/**
 * Joins at once: 50 subscriber bots (in 3 forked worker processes) join one publisher on one
 * SFU node at the same moment; the time until each has media (its first video key frame),
 * p50/p95/max, the last one being when all have media. Baseline in the same run: one
 * subscriber joining alone, 5 times.
 *
 *   npm run bench -- joins
 *   node --conditions=source --import tsx bench/joins.bench.ts   (prints, writes nothing)
 */
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { sampleSum } from '../test/helpers/metrics.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { Child, cpuSeconds, nowMs } from './fanout-common.js';
import {
  type BenchCell,
  type BenchColumn,
  type BenchResult,
  type BenchTarget,
  emitResult,
  finishedResult,
  interpolatedPercentile,
  median,
  Progress,
} from './lib.js';

const NAME = 'joins';
const ROOM = 'joins';
const PUBLISHER = 'pub';
const BURST = 50;
const WORKERS = 3;
const BURSTS = 3;
const ALONE = 5;
/** Between joins: longer than the node's 300 ms PLI gap, so each join asks for its own. */
const GAP_MS = 600;
/** Leaves the workers time to receive the start time before it. */
const LEAD_MS = 300;
const CPU_SAMPLE_MS = 100;
/** The CPU peak is the busiest window of this many samples (1 s). */
const CPU_WINDOW = 10;
const SATURATED = 0.9;
const TARGET_P50_MS = 200;
const POLL_MS = 25;
const WAIT_TIMEOUT_MS = 30_000;

const started = Date.now();
const progress = new Progress(`[${NAME}]`);

interface JoinResult {
  identity: string;
  joinedMs: number;
  keyframeMs: number;
  error?: string;
}

interface Case {
  label: string;
  kind: 'baseline' | 'burst';
  results: JoinResult[];
  /** Per worker (and the node): average and peak-1 s CPU share over the burst, 1 = a core. */
  clientAvg: number[];
  clientPeak: number[];
  nodeAvg: number;
  nodePeak: number;
  wallMs: number;
  nodeJoinMeanMs: number;
  nodeJoins: number;
  /** sfu_join_duration_seconds observations over the case, per bucket upper bound (s). */
  nodeBuckets: [string, number][];
  plis: number;
}

async function metrics(node: NodeProcess): Promise<string> {
  return (await fetch(`${node.metricsUrl}/metrics`)).text();
}

async function waitParticipants(node: NodeProcess, n: number): Promise<void> {
  const deadline = Date.now() + WAIT_TIMEOUT_MS;
  for (;;) {
    const text = await metrics(node).catch(() => '');
    if (sampleSum(text, 'sfu_participants') === n && sampleSum(text, 'sfu_subscriptions') === 0) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} participants`);
    await sleep(POLL_MS);
  }
}

/** Samples the CPU time of `pids` every CPU_SAMPLE_MS until stopped. */
function cpuSampler(pids: number[]) {
  const samples: { t: number; cpu: number[] }[] = [];
  const take = () => samples.push({ t: performance.now(), cpu: pids.map(cpuSeconds) });
  take();
  const timer = setInterval(take, CPU_SAMPLE_MS);
  return {
    stop(): { avg: number[]; peak: number[] } {
      clearInterval(timer);
      take();
      const first = samples[0] as { t: number; cpu: number[] };
      const last = samples.at(-1) as { t: number; cpu: number[] };
      const avg = pids.map(
        (_, k) => ((last.cpu[k] ?? 0) - (first.cpu[k] ?? 0)) / ((last.t - first.t) / 1000),
      );
      const peak = pids.map((_, k) => {
        let best = 0;
        for (let i = 0; i < samples.length; i++) {
          const j = Math.min(samples.length - 1, i + CPU_WINDOW);
          const a = samples[i] as { t: number; cpu: number[] };
          const b = samples[j] as { t: number; cpu: number[] };
          if (b.t - a.t < 500) continue;
          best = Math.max(best, ((b.cpu[k] ?? 0) - (a.cpu[k] ?? 0)) / ((b.t - a.t) / 1000));
        }
        return best || (avg[k] ?? 0);
      });
      return { avg, peak };
    },
  };
}

async function runCase(
  node: NodeProcess,
  workers: Child[],
  label: string,
  kind: Case['kind'],
  prefix: string,
  counts: number[],
): Promise<Case> {
  const before = await metrics(node);
  const used = workers.slice(0, counts.length);
  const sampler = cpuSampler([...used.map((w) => w.pid), node.pid]);
  const at = nowMs() + LEAD_MS;
  const t0 = performance.now();
  const lists = await Promise.all(
    used.map((w, k) =>
      w.call<JoinResult[]>('join', {
        url: node.url,
        room: ROOM,
        prefix: `${prefix}-w${k}`,
        count: counts[k],
        publisher: PUBLISHER,
        at,
      }),
    ),
  );
  const wallMs = performance.now() - t0 - LEAD_MS;
  const cpu = sampler.stop();
  const after = await metrics(node);
  const d = (name: string) => sampleSum(after, name) - sampleSum(before, name);
  const joins = d('sfu_join_duration_seconds_count');
  const result: Case = {
    label,
    kind,
    results: lists.flat(),
    clientAvg: cpu.avg.slice(0, -1),
    clientPeak: cpu.peak.slice(0, -1),
    nodeAvg: cpu.avg.at(-1) ?? 0,
    nodePeak: cpu.peak.at(-1) ?? 0,
    wallMs,
    nodeJoinMeanMs: joins > 0 ? (d('sfu_join_duration_seconds_sum') / joins) * 1000 : Number.NaN,
    nodeJoins: joins,
    nodeBuckets: ['0.1', '0.2', '0.3', '0.5', '0.75', '1', '2', '5'].map((le) => [
      le,
      sampleSum(after, 'sfu_join_duration_seconds_bucket', { le }) -
        sampleSum(before, 'sfu_join_duration_seconds_bucket', { le }),
    ]),
    plis:
      sampleSum(after, 'sfu_pli_total', { direction: 'out' }) -
      sampleSum(before, 'sfu_pli_total', { direction: 'out' }),
  };
  await Promise.all(used.map((w) => w.call('closeAll')));
  await waitParticipants(node, 1);
  await sleep(GAP_MS);
  return result;
}

async function main(): Promise<void> {
  progress.step('starting the node and the publisher');
  const node = await startNode({ region: 'ams', nodeId: 'joins' });
  const pub = new Child('./bot-worker.ts');
  const workers = Array.from({ length: WORKERS }, () => new Child('./bot-worker.ts'));
  const cases: Case[] = [];
  let cold: Case | undefined;
  try {
    await pub.call('publish', { url: node.url, room: ROOM, identity: PUBLISHER });
    await waitParticipants(node, 1);
    await sleep(GAP_MS);
    progress.step('cold join (not counted), then one subscriber alone');
    cold = await runCase(node, workers, 'cold', 'baseline', 'cold', [1]);
    // Every worker loads its code paths once before the burst.
    for (const [k, w] of workers.entries()) {
      if (k > 0) await runCase(node, [w], 'warm', 'baseline', `warm${k}`, [1]);
    }
    const alone: JoinResult[] = [];
    const aloneCases: Case[] = [];
    for (let i = 0; i < ALONE; i++) {
      const c = await runCase(node, workers, 'alone', 'baseline', `alone${i}`, [1]);
      alone.push(...c.results);
      aloneCases.push(c);
    }
    cases.push({
      ...(aloneCases[0] as Case),
      label: `baseline: one subscriber joining alone, ${ALONE} times`,
      results: alone,
      clientAvg: [Math.max(...aloneCases.map((c) => c.clientAvg[0] ?? 0))],
      clientPeak: [Math.max(...aloneCases.map((c) => c.clientPeak[0] ?? 0))],
      nodeAvg: Math.max(...aloneCases.map((c) => c.nodeAvg)),
      nodePeak: Math.max(...aloneCases.map((c) => c.nodePeak)),
      nodeJoinMeanMs: median(aloneCases.map((c) => c.nodeJoinMeanMs)),
      nodeJoins: aloneCases.reduce((a, c) => a + c.nodeJoins, 0),
      plis: aloneCases.reduce((a, c) => a + c.plis, 0),
    });
    const counts = Array.from(
      { length: WORKERS },
      (_, k) => Math.floor(BURST / WORKERS) + (k < BURST % WORKERS ? 1 : 0),
    );
    for (let b = 1; b <= BURSTS; b++) {
      progress.step(`burst ${b}/${BURSTS}: ${BURST} subscribers at once (${counts.join(' + ')})`);
      cases.push(
        await runCase(
          node,
          workers,
          `${BURST} subscribers at once, burst ${b} (${WORKERS} workers: ${counts.join(' + ')})`,
          'burst',
          `burst${b}`,
          counts,
        ),
      );
    }
  } finally {
    progress.done();
    await Promise.allSettled([pub, ...workers].map((w) => w.call('close')));
    await Promise.allSettled([pub, ...workers].map((w) => w.stop()));
    await node.stop();
  }
  emitResult(buildResult(cases, cold));
}

function pct(results: JoinResult[], key: 'joinedMs' | 'keyframeMs', p: number): number {
  const v = results
    .map((r) => r[key])
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  return v.length > 0 ? interpolatedPercentile(v, p) : Number.NaN;
}

function buildResult(cases: Case[], cold: Case | undefined): BenchResult {
  const columns: BenchColumn[] = [
    { key: 'case', label: 'case' },
    { key: 'joins', label: 'joins', format: 'int' },
    { key: 'media', label: 'got media', format: 'int' },
    { key: 'joined', label: 'joined p50', format: { significant: 3 } },
    { key: 'p50', label: 'keyframe p50', format: { significant: 3 } },
    { key: 'p95', label: 'p95', format: { significant: 3 } },
    { key: 'max', label: 'max = all have media', format: { significant: 3 } },
    { key: 'x', label: '× baseline p50', format: { significant: 2 }, suffix: '×' },
    { key: 'nodeJoin', label: 'node join→media mean (n)' },
    { key: 'plis', label: 'PLIs', format: 'int' },
    { key: 'nodeCpu', label: 'node CPU avg / peak' },
    { key: 'clientCpu', label: 'client CPU avg / peak, per worker' },
    { key: 'saturated', label: 'client saturated' },
  ];
  const base = cases.find((c) => c.kind === 'baseline');
  const baseP50 = base ? pct(base.results, 'keyframeMs', 50) : Number.NaN;
  const share = (x: number) => `${Math.round(x * 100)} %`;
  const rows: Record<string, BenchCell>[] = cases.map((c) => {
    const ok = c.results.filter((r) => Number.isFinite(r.keyframeMs));
    const p50 = pct(c.results, 'keyframeMs', 50);
    const sat = c.clientPeak.some((x) => x > SATURATED);
    return {
      case: c.label,
      joins: c.results.length,
      media: ok.length,
      joined: pct(c.results, 'joinedMs', 50),
      p50,
      p95: pct(c.results, 'keyframeMs', 95),
      max: pct(c.results, 'keyframeMs', 100),
      x: p50 / baseP50,
      nodeJoin: `${c.nodeJoinMeanMs.toFixed(0)} (${c.nodeJoins})`,
      plis: c.plis,
      nodeCpu: `${share(c.nodeAvg)} / ${share(c.nodePeak)}`,
      clientCpu: c.clientAvg
        .map((a, k) => `${share(a)} / ${share(c.clientPeak[k] ?? 0)}`)
        .join(', '),
      saturated: sat ? 'YES (> 90 % of a core)' : 'no',
    };
  });
  const targets: BenchTarget[] = [];
  if (base) {
    targets.push({
      what: `first keyframe after join, one subscriber alone (baseline), p50 over ${base.results.length}`,
      target: `< ${TARGET_P50_MS} ms`,
      value: `${baseP50.toFixed(0)} ms (max ${pct(base.results, 'keyframeMs', 100).toFixed(0)} ms)`,
      pass: baseP50 < TARGET_P50_MS,
    });
  }
  const notes: string[] = [];
  const bursts = cases.filter((c) => c.kind === 'burst');
  const failed = bursts.flatMap((c) => c.results.filter((r) => r.error));
  if (bursts.length > 0) {
    const lasts = bursts.map((c) => pct(c.results, 'keyframeMs', 100).toFixed(0)).join(', ');
    const sat = bursts.some((c) => c.clientPeak.some((x) => x > SATURATED));
    notes.push(
      `${BURST} joins at once: all had media after ${lasts} ms (the ${bursts.length} bursts), against ${baseP50.toFixed(0)} ms for a join alone. Issue 8 sets no target for the burst; the < ${TARGET_P50_MS} ms target is for a join by itself. ${sat ? 'A client worker was busier than 90 % of a core during a burst (see the table): the client side limited those numbers, and the node may well do better.' : 'No client worker reached 90 % of a core (busiest 1 s window): no single client process was the bottleneck.'} But the machine was busy as a whole: the node and the subscriber workers together used ${bursts.map((c) => `${Math.round((c.nodeAvg + c.clientAvg.reduce((a, b) => a + b, 0)) * 100)} %`).join(', ')} of one core on average over the bursts (publisher and benchmark process not counted), on ${cpus().length} cores, so the node competed with its clients for CPU and the burst numbers are those of this shared machine.${failed.length > 0 ? ` ${failed.length} bot(s) failed: ${failed[0]?.error}` : ''}`,
    );
  }
  for (const c of bursts) {
    // Bots that got the same key frame arrive within a few ms of each other: group them.
    const kfs = c.results
      .map((r) => r.keyframeMs)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    const groups: number[][] = [];
    for (const x of kfs) {
      const g = groups.at(-1);
      if (g && x - (g.at(-1) ?? 0) < 50) g.push(x);
      else groups.push([x]);
    }
    notes.push(
      `${c.label}: the bots' first key frames came in ${groups.length} waves: ${groups.map((g) => `${g.length} at ${Math.round(g[0] ?? 0)} ms`).join(', ')}. Each wave follows one of the node's PLIs (${c.plis} in the burst), at most one per 300 ms (KEYFRAME_REQUEST_GAP_MS). The node had sent every subscriber its first media packet (audio or video, key frame or not) within ${c.nodeBuckets.find(([, n]) => n >= c.nodeJoins)?.[0] ?? '?'} s of its join message (bucket bound, sfu_join_duration_seconds); bots whose key frame came in a later wave waited for a key frame, not for their connection. Why an earlier wave's key frame did not serve them is not measured here (candidates: key-frame packets lost in a busy client's socket buffer, or a subscriber's sender not yet sending when that key frame went out).`,
    );
    notes.push(
      `${c.label}: the node's sfu_join_duration_seconds over the burst, cumulative per bucket (le, seconds): ${c.nodeBuckets.map(([le, n]) => `≤ ${le}: ${n}`).join(', ')}.`,
    );
  }
  if (base) {
    notes.push(
      `Baseline joins one by one, first key frame ms: ${base.results.map((r) => r.keyframeMs.toFixed(1)).join(', ')}.`,
    );
  }
  notes.push(
    `Columns, ms from the common start moment (every bot of a case calls Bot.connect at the same performance.timeOrigin + now() instant, passed to the workers ${LEAD_MS} ms ahead): "joined" when Bot.connect resolved (dev token over HTTP, websocket, join answered); "keyframe" the bot's first video key frame from the publisher (p50, p95 interpolated between ranks; max is the last one, when all have media). "node join→media" is the mean of sfu_join_duration_seconds on the node over the case's joins (join message → first media packet sent). "PLIs" counts the PLIs the node sent to the publisher over the case (sfu_pli_total{direction="out"}). CPU: utime + stime from /proc/<pid>/stat sampled every ${CPU_SAMPLE_MS} ms (10 ms ticks), avg over the case and peak = the busiest 1 s window; 100 % = one core; "client saturated" when a worker's peak is above ${SATURATED * 100} %. For the baseline the CPU columns are the highest of its ${ALONE} joins.`,
    `Setup: one node process (--dev, SFU_LOG_LEVEL=info) on 127.0.0.1; the publisher bot (VP8 + Opus, key frames only when the node sends a PLI, keyframeIntervalMs 600 000) in its own forked worker; subscriber bots in ${WORKERS} other workers (route: false, ICE on 127.0.0.1). The node asks the publisher for a key frame when a subscriber's PeerConnection connects, at most once per 300 ms per publication, so joins that connect together share key frames. Before the timed cases each worker joined once (cold joins, not counted${cold ? `; the first took ${pct(cold.results, 'keyframeMs', 100).toFixed(0)} ms` : ''}); every case starts when the node is back to the publisher alone, ${GAP_MS} ms after the previous one, longer than the PLI gap. The machine has 2 cores, shared by the node, the publisher and the ${WORKERS} subscriber workers.`,
  );
  return finishedResult(NAME, 'Joins at once: 50 subscribers to one publisher', started, {
    columns,
    rows,
    targets,
    notes,
  });
}

await main();
