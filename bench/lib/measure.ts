/**
 * The measuring loop: warm-up, timed rounds (the median round is reported), individually timed
 * operations for latency percentiles, and the share of the rounds spent in GC pauses.
 */
import { type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';
import { median, percentile } from './stats.js';

export interface MeasureOptions {
  /** Untimed running first, so that V8 has optimized the code. Default 300 ms. */
  warmupMs?: number;
  /** Timed rounds; the median round is reported. Default 6. */
  rounds?: number;
  /** Default 300 ms. */
  roundMs?: number;
  /** Individually timed operations for the latency percentiles. Default at most 20 000... */
  latencySamples?: number;
  /** ...or this long, whichever ends first. Default 250 ms. */
  latencyMs?: number;
  /** Called between rounds, for the progress line. */
  onPhase?: (phase: string) => void;
}

export interface Measurement {
  /** Median of the rounds' operations per second. */
  opsPerSec: number;
  /** 1e6 / opsPerSec. */
  usPerOp: number;
  roundOpsPerSec: number[];
  /** (fastest - slowest) / median round: how noisy the run was. */
  spread: number;
  /** Share of the timed rounds' wall time spent in GC pauses (0..1). */
  gcShare: number;
  /** Per-operation latency from individually timed operations, µs. */
  p50Us: number;
  p99Us: number;
  maxUs: number;
  samples: number;
}

// Every result lands here so that V8 cannot drop a call whose value nobody reads.
let sink: unknown;

const now = process.hrtime.bigint;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Measures `op(i)`, a synchronous operation; `i` counts up so that the operation can pick
 * its input from a table. Operations run in batches between clock reads, the batch sized in
 * the warm-up to take about 0.2 ms, so the clock costs nothing per operation. The event loop
 * gets a turn between rounds (timers of the code under test, GC finalizers).
 */
export async function measure(
  op: (i: number) => unknown,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const o = resolveMeasureOptions(options);
  let i = 0;
  collectGarbage();
  o.onPhase('warm-up');
  let batch = 1;
  const warmEnd = now() + ms(o.warmupMs);
  for (;;) {
    const t0 = now();
    for (let k = 0; k < batch; k++) sink = op(i++);
    const t1 = now();
    if (t1 - t0 < 200_000n && batch < 1 << 24) batch *= 2;
    if (t1 >= warmEnd) break;
  }
  const gc = watchGc();
  const rounds: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    await yieldToLoop();
    o.onPhase(`round ${r + 1}/${o.rounds}`);
    let ops = 0;
    const start = now();
    const end = start + ms(o.roundMs);
    let t = start;
    while (t < end) {
      for (let k = 0; k < batch; k++) sink = op(i++);
      ops += batch;
      t = now();
    }
    gc.addWindow(start, t);
    rounds.push((ops * 1e9) / Number(t - start));
  }
  await yieldToLoop();
  o.onPhase('latency');
  const samples = new Float64Array(o.latencySamples);
  const stop = now() + ms(o.latencyMs);
  let n = 0;
  while (n < samples.length) {
    const t0 = now();
    sink = op(i++);
    const t1 = now();
    samples[n++] = Number(t1 - t0);
    if ((n & 255) === 0 && t1 > stop) break;
  }
  return summarize(rounds, samples.subarray(0, n), await gc.share());
}

/** {@link measure} for an asynchronous operation: one awaited operation at a time. */
export async function measureAsync(
  op: (i: number) => Promise<unknown>,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const o = resolveMeasureOptions(options);
  let i = 0;
  collectGarbage();
  o.onPhase('warm-up');
  const warmEnd = now() + ms(o.warmupMs);
  while (now() < warmEnd) {
    for (let k = 0; k < 64; k++) sink = await op(i++);
  }
  const gc = watchGc();
  const rounds: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    await yieldToLoop();
    o.onPhase(`round ${r + 1}/${o.rounds}`);
    let ops = 0;
    const start = now();
    const end = start + ms(o.roundMs);
    let t = start;
    while (t < end) {
      for (let k = 0; k < 64; k++) sink = await op(i++);
      ops += 64;
      t = now();
    }
    gc.addWindow(start, t);
    rounds.push((ops * 1e9) / Number(t - start));
  }
  await yieldToLoop();
  o.onPhase('latency');
  const samples = new Float64Array(o.latencySamples);
  const stop = now() + ms(o.latencyMs);
  let n = 0;
  while (n < samples.length) {
    const t0 = now();
    sink = await op(i++);
    const t1 = now();
    samples[n++] = Number(t1 - t0);
    if ((n & 255) === 0 && t1 > stop) break;
  }
  return summarize(rounds, samples.subarray(0, n), await gc.share());
}

/**
 * Sums the GC pauses (perf_hooks `gc` entries) that started inside the timed windows. The
 * entries arrive asynchronously, so `share()` waits a turn of the event loop first.
 */
function watchGc(): { addWindow(start: bigint, end: bigint): void; share(): Promise<number> } {
  const entries: PerformanceEntry[] = [];
  const windows: [number, number][] = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  // hrtime and performance.now() are different clocks: map one onto the other once.
  const offsetMs = performance.now() - Number(now()) / 1e6;
  return {
    addWindow(start, end) {
      windows.push([Number(start) / 1e6 + offsetMs, Number(end) / 1e6 + offsetMs]);
    },
    async share() {
      await new Promise((resolve) => setTimeout(resolve, 0));
      entries.push(...observer.takeRecords());
      observer.disconnect();
      let paused = 0;
      let total = 0;
      for (const [from, to] of windows) {
        total += to - from;
        for (const e of entries) if (e.startTime >= from && e.startTime < to) paused += e.duration;
      }
      return total > 0 ? paused / total : 0;
    },
  };
}

/**
 * What timing one operation costs by itself: the median and p99 of timing an empty
 * function, ns. Per-operation latencies below a few times this are mostly the clock.
 */
export function timerFloorNs(): { p50: number; p99: number } {
  const samples = new Float64Array(20_000);
  const empty = (i: number) => i;
  for (let n = 0; n < samples.length; n++) {
    const t0 = now();
    sink = empty(n);
    samples[n] = Number(now() - t0);
  }
  samples.sort();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Runs a full GC when the process has `--expose-gc` (the runner passes it). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

/** Reads the sink, so that no analysis can prove the stores to it dead. */
export function sinkValue(): unknown {
  return sink;
}

function resolveMeasureOptions(options: MeasureOptions): Required<MeasureOptions> {
  return {
    warmupMs: options.warmupMs ?? 300,
    rounds: options.rounds ?? 6,
    roundMs: options.roundMs ?? 300,
    latencySamples: options.latencySamples ?? 20_000,
    latencyMs: options.latencyMs ?? 250,
    onPhase: options.onPhase ?? (() => {}),
  };
}

function summarize(rounds: number[], samples: Float64Array, gcShare: number): Measurement {
  samples.sort();
  const opsPerSec = median(rounds);
  return {
    opsPerSec,
    usPerOp: 1e6 / opsPerSec,
    roundOpsPerSec: rounds,
    spread: (Math.max(...rounds) - Math.min(...rounds)) / opsPerSec,
    gcShare,
    p50Us: percentile(samples, 50) / 1e3,
    p99Us: percentile(samples, 99) / 1e3,
    maxUs: percentile(samples, 100) / 1e3,
    samples: samples.length,
  };
}

const ms = (milliseconds: number) => BigInt(Math.round(milliseconds * 1e6));
