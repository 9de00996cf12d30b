/**
 * The result format: what a benchmark hands to the runner (scripts/run-bench.mjs) as JSON, and
 * the check the runner applies when it reads it back.
 */
import { writeFileSync } from 'node:fs';
import { describeMachine, type Machine } from './machine.js';
import { renderText } from './render.js';

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
  /** Further tables, printed after the main one (a benchmark that measures two things). */
  tables?: BenchSubTable[] | undefined;
  targets: BenchTarget[];
  notes: string[];
}

/** A further table of a result: its own title, columns and rows. */
export interface BenchSubTable {
  title: string;
  columns: BenchColumn[];
  rows: Record<string, BenchCell>[];
}

export const BENCH_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** What a benchmark measured; {@link finishedResult} adds who measured it and when. */
export type BenchTable = Pick<BenchResult, 'columns' | 'rows' | 'tables' | 'targets' | 'notes'>;

/**
 * The result of a run that began at `started` (a Date.now()) and ends now: every benchmark
 * dates and times its result the same way.
 */
export function finishedResult(
  name: string,
  title: string,
  started: number,
  table: BenchTable,
): BenchResult {
  return {
    name,
    title,
    date: new Date().toISOString(),
    durationMs: Date.now() - started,
    ...table,
  };
}

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
  checkTable(columns, rows, '', fail);
  if (raw.tables !== undefined) {
    if (!Array.isArray(raw.tables)) fail('tables');
    for (const [k, t] of (raw.tables as unknown[]).entries()) {
      if (!isObject(t) || typeof t.title !== 'string') return fail(`tables[${k}]`);
      checkTable(t.columns, t.rows, `tables[${k}].`, fail);
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

function checkTable(
  columns: unknown,
  rows: unknown,
  at: string,
  fail: (what: string) => never,
): void {
  if (!Array.isArray(columns) || columns.length === 0) fail(`${at}columns`);
  for (const [i, c] of columns.entries()) {
    if (!isObject(c) || typeof c.key !== 'string' || typeof c.label !== 'string') {
      fail(`${at}columns[${i}]`);
    }
  }
  if (!Array.isArray(rows)) fail(`${at}rows`);
  for (const [i, r] of rows.entries()) {
    if (!isObject(r)) fail(`${at}rows[${i}]`);
    for (const v of Object.values(r as object)) {
      if (v !== null && typeof v !== 'string' && typeof v !== 'number')
        fail(`${at}rows[${i}] cell`);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
