/**
 * Shared pieces of the benchmarks: the result format, the measuring loop, percentiles, the
 * machine description, the progress line and the rendering of tables and of
 * docs/BENCHMARKS.md sections.
 *
 * A benchmark is a script `bench/<name>.bench.ts` that measures, builds a {@link BenchResult}
 * and hands it to {@link emitResult}. Run by `npm run bench` (scripts/run-bench.mjs), it
 * writes the result as JSON to the file named by `BENCH_RESULT_FILE` and the runner prints,
 * stores and documents it; run on its own, it prints its section to stdout.
 *
 * Speed is measured here and never asserted in tests: on a shared VM a timing assertion
 * fails at random.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';

// ---------------------------------------------------------------------------------------
// The result format

/** A cell: numbers stay numbers in the JSON, so runs can be compared by a program. */
export type BenchCell = string | number | null;

export interface BenchColumn {
  key: string;
  label: string;
  /**
   * How numbers print: `int` grouped without decimals, `{ significant }` with that many
   * significant digits, `{ decimals }` fixed. Strings print as they are; null as "–".
   */
  format?: 'int' | { significant: number } | { decimals: number };
  /** Printed after a number, e.g. `×` or ` %`. */
  suffix?: string;
}

export interface BenchTarget {
  /** What is measured, e.g. "route decision (GeoIP + selection), median µs/op". */
  what: string;
  /** The target as a reader says it, e.g. "< 10 µs". */
  target: string;
  /** The measured value as printed, e.g. "3.2 µs (p99 7.9 µs)". */
  value: string;
  pass: boolean;
}

export interface Machine {
  /** CPU model, from /proc/cpuinfo where there is one. */
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  /** Distribution, kernel and architecture. */
  os: string;
}

export interface BenchResult {
  /** The file's name without `.bench.ts`; also the docs/BENCHMARKS.md marker name. */
  name: string;
  title: string;
  /** ISO 8601, when the run finished. */
  date: string;
  durationMs: number;
  machine?: Machine | undefined;
  /**
   * The 1-minute load average before and after the run (added by the runner): above the
   * core count, other processes took CPU time from the benchmark.
   */
  load?: { before: number; after: number } | undefined;
  columns: BenchColumn[];
  rows: Record<string, BenchCell>[];
  targets: BenchTarget[];
  notes: string[];
}

export const BENCH_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * Hands a finished result over: to the runner through `BENCH_RESULT_FILE`, or to a human on
 * stdout when the benchmark runs on its own.
 */
export function emitResult(result: BenchResult): void {
  const file = process.env.BENCH_RESULT_FILE;
  const complete: BenchResult = { ...result, machine: result.machine ?? describeMachine() };
  if (file) {
    writeFileSync(file, `${JSON.stringify(complete, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${renderText(complete)}\n`);
}

/**
 * Reads a result written by a benchmark process (it crosses a process boundary, so it is
 * checked once here). Throws a TypeError naming the first bad field.
 */
export function parseBenchResult(raw: unknown, expectedName?: string): BenchResult {
  const fail = (what: string): never => {
    throw new TypeError(`invalid benchmark result: ${what}`);
  };
  if (!isObject(raw)) return fail('not an object');
  const { name, title, date, durationMs, machine, columns, rows, targets, notes } = raw;
  if (typeof name !== 'string' || !BENCH_NAME.test(name)) return fail('name');
  if (expectedName !== undefined && name !== expectedName) {
    fail(`name "${name}" is not the file's name "${expectedName}"`);
  }
  if (typeof title !== 'string' || title === '') fail('title');
  if (typeof date !== 'string' || Number.isNaN(Date.parse(date))) fail('date');
  if (typeof durationMs !== 'number') fail('durationMs');
  if (machine !== undefined && !isObject(machine)) fail('machine');
  if (raw.load !== undefined && !isObject(raw.load)) fail('load');
  if (!Array.isArray(columns) || columns.length === 0) return fail('columns');
  for (const [i, c] of columns.entries()) {
    if (!isObject(c) || typeof c.key !== 'string' || typeof c.label !== 'string') {
      fail(`columns[${i}]`);
    }
  }
  if (!Array.isArray(rows)) return fail('rows');
  for (const [i, r] of rows.entries()) {
    if (!isObject(r)) fail(`rows[${i}]`);
    for (const v of Object.values(r as object)) {
      if (v !== null && typeof v !== 'string' && typeof v !== 'number') fail(`rows[${i}] cell`);
    }
  }
  if (!Array.isArray(targets)) return fail('targets');
  for (const [i, t] of targets.entries()) {
    if (
      !isObject(t) ||
      typeof t.what !== 'string' ||
      typeof t.target !== 'string' ||
      typeof t.value !== 'string' ||
      typeof t.pass !== 'boolean'
    ) {
      fail(`targets[${i}]`);
    }
  }
  if (!Array.isArray(notes) || !notes.every((n) => typeof n === 'string')) fail('notes');
  return raw as unknown as BenchResult;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------
// The machine

/** Cores, CPU model, memory, Node version and OS of this machine. */
export function describeMachine(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    // os.cpus() reports the same on Linux, but a VM without per-core entries reports none.
    const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (model?.[1]) cpu = model[1].trim();
  } catch {
    // Not Linux: os.cpus() already gave the model.
  }
  let distribution = `${os.type()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty?.[1]) distribution = pretty[1];
  } catch {
    // No os-release (macOS, Windows): the kernel type stands in for the distribution.
  }
  return {
    cpu,
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${distribution}, ${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export function machineLine(m: Machine): string {
  return `${m.cores} cores, ${m.cpu}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}`;
}

// ---------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of an ascending array; NaN when it is empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/**
 * Percentile of an ascending array by linear interpolation between the closest ranks (the
 * "R-7" definition of spreadsheets and numpy); NaN when it is empty. For a few dozen samples,
 * where the nearest-rank p95 is simply the largest value.
 */
export function interpolatedPercentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (Math.min(100, Math.max(0, p)) / 100) * (sorted.length - 1);
  const below = Math.floor(h);
  const low = sorted[below] as number;
  const high = sorted[Math.min(sorted.length - 1, below + 1)] as number;
  return low + (h - below) * (high - low);
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** A deterministic PRNG, so that every run benchmarks the same inputs. */
export { seededRandom } from '@geosfu/common';

// ---------------------------------------------------------------------------------------
// Measuring

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

// ---------------------------------------------------------------------------------------
// Progress

/**
 * The one-line progress indicator on stderr. On a terminal the line is rewritten in place;
 * elsewhere (CI logs, a pipe) only each new step prints, one line each, so logs stay short.
 */
export class Progress {
  readonly #prefix: string;
  readonly #tty = process.stderr.isTTY === true;
  readonly #started = Date.now();
  #step = '';
  #shown = false;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** A new step, such as the next case of a benchmark. */
  step(text: string): void {
    this.#step = text;
    if (this.#tty) this.detail('');
    else process.stderr.write(`${this.#prefix} ${text}\n`);
  }

  /** Detail within the step (round 3/5); shown on a terminal only. */
  detail(text: string): void {
    if (!this.#tty) return;
    const elapsed = ((Date.now() - this.#started) / 1000).toFixed(1);
    const line = `${this.#prefix} ${this.#step}${text ? ` · ${text}` : ''} · ${elapsed} s`;
    const width = process.stderr.columns ?? 100;
    process.stderr.write(`\r\x1b[2K${line.slice(0, Math.max(20, width - 1))}`);
    this.#shown = true;
  }

  /** Clears the line, so that what follows starts on a clean one. */
  done(): void {
    if (this.#tty && this.#shown) process.stderr.write('\r\x1b[2K');
    this.#shown = false;
  }
}

// ---------------------------------------------------------------------------------------
// Rendering

export function formatCell(value: BenchCell | undefined, column: BenchColumn): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return String(value);
  const format = column.format;
  let text: string;
  if (format === 'int') {
    text = Math.round(value).toLocaleString('en-US');
  } else if (format && 'significant' in format) {
    text = value.toLocaleString('en-US', {
      maximumSignificantDigits: format.significant,
      minimumSignificantDigits: Math.min(format.significant, 2),
    });
  } else if (format && 'decimals' in format) {
    text = value.toLocaleString('en-US', {
      minimumFractionDigits: format.decimals,
      maximumFractionDigits: format.decimals,
    });
  } else {
    text = String(value);
  }
  return `${text}${column.suffix ?? ''}`;
}

/** A Markdown table padded to line up in a terminal too; numbers right-aligned. */
export function renderTable(result: Pick<BenchResult, 'columns' | 'rows'>): string {
  const { columns, rows } = result;
  const cells = rows.map((row) =>
    columns.map((c) => formatCell(row[c.key], c).replace(/\|/g, '\\|')),
  );
  const numeric = columns.map((c) => rows.some((row) => typeof row[c.key] === 'number'));
  const widths = columns.map((c, j) =>
    Math.max(3, c.label.length, ...cells.map((line) => (line[j] as string).length)),
  );
  const line = (values: readonly string[]) =>
    `| ${values
      .map((v, j) => (numeric[j] ? v.padStart(widths[j] as number) : v.padEnd(widths[j] as number)))
      .join(' | ')} |`;
  const rule = `| ${widths
    .map((w, j) => (numeric[j] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)))
    .join(' | ')} |`;
  return [line(columns.map((c) => c.label)), rule, ...cells.map((values) => line(values))].join(
    '\n',
  );
}

export function renderTargets(targets: readonly BenchTarget[], markdown: boolean): string[] {
  return targets.map((t) => {
    const verdict = t.pass ? 'PASS' : 'MISS';
    return markdown
      ? `- **${verdict}** ${t.what}: target ${t.target}, measured ${t.value}`
      : `${verdict}  ${t.what}: target ${t.target}, measured ${t.value}`;
  });
}

/** "; load average 0.4 → 1.1", and whether that means the machine was busy. */
function loadText(result: BenchResult): string {
  if (!result.load) return '';
  const { before, after } = result.load;
  const cores = result.machine?.cores ?? os.availableParallelism();
  const busy =
    Math.max(before, after) > cores
      ? `, more than its ${cores} cores: other work competed for the CPU, so throughput is pessimistic and p50 the steadier figure`
      : '';
  return `; 1-minute load average ${before.toFixed(1)} → ${after.toFixed(1)}${busy}`;
}

/** What the runner prints for a result. */
export function renderText(result: BenchResult): string {
  const lines = [
    `${result.title} (${result.name})${result.load ? `, ${loadText(result).slice(2)}` : ''}`,
    '',
    renderTable(result),
    '',
  ];
  if (result.targets.length > 0) lines.push(...renderTargets(result.targets, false), '');
  for (const note of result.notes) lines.push(`- ${note}`);
  return lines.join('\n');
}

/** A result's section of docs/BENCHMARKS.md, markers included. */
export function renderSection(result: BenchResult): string {
  const machine = result.machine ? ` on ${machineLine(result.machine)}` : '';
  const lines = [
    sectionStart(result.name),
    `## ${result.title}`,
    '',
    `\`npm run bench -- ${result.name}\`, run ${formatDate(result.date)}${machine}; took ${Math.round(result.durationMs / 1000)} s${loadText(result)}.`,
    '',
    renderTable(result),
    '',
  ];
  if (result.targets.length > 0) lines.push(...renderTargets(result.targets, true), '');
  for (const note of result.notes) lines.push(`- ${note}`);
  if (result.notes.length > 0) lines.push('');
  lines.push(sectionEnd(result.name));
  return lines.join('\n');
}

const sectionStart = (name: string) => `<!-- bench:${name}:start -->`;
const sectionEnd = (name: string) => `<!-- bench:${name}:end -->`;
const MACHINE_START = '<!-- bench-machine:start -->';
const MACHINE_END = '<!-- bench-machine:end -->';

function formatDate(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/**
 * docs/BENCHMARKS.md with the sections of the results replaced (or appended when new) and
 * the machine block updated; everything else, including the sections of benchmarks that did
 * not run this time, stays as it was.
 */
export function updateBenchmarksDoc(
  existing: string | undefined,
  results: readonly BenchResult[],
  machine: Machine,
  date: string,
): string {
  let doc =
    existing ??
    [
      '# Benchmarks',
      '',
      'Generated by `npm run bench`; see scripts/run-bench.mjs.',
      '',
      MACHINE_START,
      MACHINE_END,
      '',
    ].join('\n');
  const machineBlock = `${MACHINE_START}\nLast run ${formatDate(date)} on: ${machineLine(machine)}.\n${MACHINE_END}`;
  doc = replaceBlock(doc, MACHINE_START, MACHINE_END, machineBlock);
  for (const result of results) {
    const section = renderSection(result);
    const start = sectionStart(result.name);
    const end = sectionEnd(result.name);
    doc = doc.includes(start)
      ? replaceBlock(doc, start, end, section)
      : `${doc.replace(/\s*$/, '')}\n\n${section}\n`;
  }
  return doc;
}

function replaceBlock(doc: string, start: string, end: string, block: string): string {
  const from = doc.indexOf(start);
  const to = doc.indexOf(end, from);
  if (from === -1) return doc;
  if (to === -1) {
    throw new Error(`docs/BENCHMARKS.md has "${start}" without "${end}"; restore the end marker`);
  }
  return doc.slice(0, from) + block + doc.slice(to + end.length);
}

/** Reads a file, or undefined when there is none. */
export function readIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}
