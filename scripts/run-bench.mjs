#!/usr/bin/env node
// Runs the benchmarks, bench/*.bench.ts, each in its own Node process on the TypeScript
// sources, then prints their tables, stores their results and regenerates
// docs/BENCHMARKS.md.
//
//   npm run bench                  every benchmark
//   npm run bench -- route         one (or several) by name
//   npm run bench -- --no-docs     leave docs/BENCHMARKS.md alone (a laptop run)
//   npm run bench -- --list        the names
//
// A benchmark writes its result as JSON to the file named by BENCH_RESULT_FILE (see
// bench/lib.ts). The runner checks it, prints it, keeps a copy in
// bench/results/<name>-<timestamp>.json (git-ignored) and replaces the benchmark's section of
// docs/BENCHMARKS.md between <!-- bench:NAME:start --> and <!-- bench:NAME:end -->; sections
// of benchmarks that did not run stay as they were.
//
// One process per benchmark, one after the other: a benchmark must not inherit another's
// JIT state or garbage, and on a 2-core machine two at once would measure each other.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const root = fileURLToPath(new URL('..', import.meta.url));
const benchDir = join(root, 'bench');
const resultsDir = join(benchDir, 'results');
const docPath = join(root, 'docs', 'BENCHMARKS.md');
const SUFFIX = '.bench.ts';

const lib = await tsImport('../bench/lib.ts', import.meta.url);

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
for (const flag of flags) {
  if (!['--no-docs', '--list', '--help'].includes(flag)) {
    console.error(`unknown option ${flag}; use --no-docs, --list or --help`);
    process.exit(2);
  }
}
if (flags.has('--help')) {
  console.log('usage: npm run bench [-- [--no-docs] [--list] [name ...]]');
  process.exit(0);
}

const available = readdirSync(benchDir)
  .filter((f) => f.endsWith(SUFFIX))
  .map((f) => f.slice(0, -SUFFIX.length))
  .sort();
if (flags.has('--list')) {
  console.log(available.join('\n'));
  process.exit(0);
}
// Accept `route`, `route.bench.ts` and `bench/route.bench.ts`: whatever a shell completes.
const asked = args
  .filter((a) => !a.startsWith('--'))
  .map((a) => a.replace(/^bench\//, '').replace(/\.bench\.ts$/, ''));
const unknown = asked.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(
    `no benchmark ${unknown.map((n) => `"${n}"`).join(', ')}; available: ${available.join(', ') || '(none)'}`,
  );
  process.exit(2);
}
const names = asked.length > 0 ? [...new Set(asked)] : available;
if (names.length === 0) {
  console.error('no bench/*.bench.ts files');
  process.exit(2);
}

const machine = lib.describeMachine();
console.log(`benchmarks: ${names.join(', ')}`);
console.log(`machine: ${lib.machineLine(machine)}\n`);

const tmp = mkdtempSync(join(tmpdir(), 'geosfu-bench-'));
const results = [];
const failed = [];
try {
  for (const [k, name] of names.entries()) {
    process.stderr.write(`[${k + 1}/${names.length}] ${name}\n`);
    const file = join(tmp, `${name}.json`);
    const loadBefore = loadavg()[0];
    const code = await runBenchmark(name, file);
    const loadAfter = loadavg()[0];
    let result;
    try {
      if (code !== 0) throw new Error(`exited with ${code}`);
      result = lib.parseBenchResult(JSON.parse(readFileSync(file, 'utf8')), name);
    } catch (error) {
      console.error(`benchmark ${name} failed: ${error.message}\n`);
      failed.push(name);
      continue;
    }
    result.machine ??= machine;
    result.load = { before: loadBefore, after: loadAfter };
    results.push(result);
    console.log(`${lib.renderText(result)}\n`);
    mkdirSync(resultsDir, { recursive: true });
    const stamp = result.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const out = join(resultsDir, `${name}-${stamp}.json`);
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`result: ${relative(root, out)}\n`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (results.length > 0 && !flags.has('--no-docs')) {
  const doc = lib.updateBenchmarksDoc(
    lib.readIfExists(docPath),
    results,
    machine,
    new Date().toISOString(),
  );
  writeFileSync(docPath, doc);
  console.log(`updated ${relative(root, docPath)}: ${results.map((r) => r.name).join(', ')}`);
}
const misses = results.flatMap((r) => r.targets.filter((t) => !t.pass).map(() => r.name));
if (misses.length > 0) {
  // A miss is information, not a failure: numbers on a shared VM move by ±20 %.
  console.log(`targets missed in: ${[...new Set(misses)].join(', ')}`);
}
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`);
  process.exit(1);
}

/** Runs one benchmark file; resolves with its exit code. */
function runBenchmark(name, resultFile) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      // --expose-gc: the harness collects garbage between cases, so that one case's garbage
      // is not collected on the next one's time.
      ['--conditions=source', '--expose-gc', '--import', 'tsx', join('bench', `${name}${SUFFIX}`)],
      {
        cwd: root,
        // stdout and stderr go straight through: the progress line is the child's.
        stdio: 'inherit',
        env: { ...process.env, BENCH_RESULT_FILE: resultFile },
      },
    );
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : (code ?? 1)));
  });
}
