/**
 * Shared pieces of the benchmarks, one concern per file under ./lib/: the result format
 * (result.ts), the measuring loop (measure.ts), percentiles (stats.ts), the machine
 * description (machine.ts), the progress line (progress.ts), the rendering of tables
 * (render.ts) and of docs/BENCHMARKS.md sections (benchmarksDoc.ts). This file is the one
 * import surface of the benchmarks and of scripts/run-bench.mjs: it names what they use.
 *
 * A benchmark is a script `bench/<name>.bench.ts` that measures, builds a {@link BenchResult}
 * and hands it to {@link emitResult}. Run by `npm run bench` (scripts/run-bench.mjs), it
 * writes the result as JSON to the file named by `BENCH_RESULT_FILE` and the runner prints,
 * stores and documents it; run on its own, it prints its section to stdout.
 *
 * Speed is measured here and never asserted in tests: on a shared VM a timing assertion
 * fails at random.
 */

/** A deterministic PRNG, so that every run benchmarks the same inputs. */
export { seededRandom } from '@geosfu/common';
export {
  readIfExists,
  renderSection,
  updateBenchmarksDoc,
} from './lib/benchmarksDoc.js';
export { describeMachine, type Machine, machineLine } from './lib/machine.js';
export {
  collectGarbage,
  type Measurement,
  type MeasureOptions,
  measure,
  measureAsync,
  sinkValue,
  timerFloorNs,
} from './lib/measure.js';
export { Progress } from './lib/progress.js';
export { formatCell, renderTable, renderTargets, renderText } from './lib/render.js';
export {
  BENCH_NAME,
  type BenchCell,
  type BenchColumn,
  type BenchResult,
  type BenchSubTable,
  type BenchTable,
  type BenchTarget,
  emitResult,
  finishedResult,
  parseBenchResult,
} from './lib/result.js';
export { interpolatedPercentile, median, percentile } from './lib/stats.js';
