/**
 * The experiment's output directory: `result.json` (the data contract of ./types.ts, read back by
 * ./resultFile.ts), CSVs of the samples for spreadsheets (./csv.ts), SVG charts (./charts.ts) and
 * `report.md` for humans (./markdown.ts).
 *
 * `writeResults` writes everything; `renderReport` reads `result.json` back and re-renders only
 * the charts and `report.md` (after a change to the renderer). Both go through `renderInto`, so
 * a re-render of an unchanged result reproduces the files byte for byte.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CHARTS_DIR, renderCharts } from './charts.js';
import { CSV_FILES, resultCsvs } from './csv.js';
import { renderMarkdown } from './markdown.js';
import { RESULT_FILE, readResult } from './resultFile.js';
import type { ExperimentResult } from './types.js';

export const REPORT_FILE = 'report.md';

/** Writes the whole output directory (created if needed); returns the paths it wrote. */
export async function writeResults(
  dir: string,
  result: ExperimentResult,
): Promise<{ reportPath: string; files: string[] }> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, text: string): Promise<void> => {
    const path = join(root, name);
    await writeFile(path, text);
    files.push(path);
  };
  await put(RESULT_FILE, `${JSON.stringify(result, null, 2)}\n`);
  const csv = resultCsvs(result);
  for (const name of CSV_FILES) await put(name, csv[name]);
  const rendered = await renderInto(root, result);
  files.push(...rendered.files);
  return { reportPath: rendered.reportPath, files };
}

/** Re-renders the charts and `report.md` of a directory `writeResults` wrote; returns the report's path. */
export async function renderReport(dir: string): Promise<string> {
  const root = resolve(dir);
  const result = await readResult(root);
  return (await renderInto(root, result)).reportPath;
}

/** Writes `charts/*.svg` and `report.md`; the single rendering path of both entry points. */
async function renderInto(
  root: string,
  result: ExperimentResult,
): Promise<{ reportPath: string; files: string[] }> {
  const chartsDir = join(root, CHARTS_DIR);
  await mkdir(chartsDir, { recursive: true });
  const charts = await renderCharts(result);
  const files: string[] = [];
  for (const chart of charts) {
    const path = join(chartsDir, chart.file);
    if (chart.svg === null) {
      // A chart that has no data now must not leave an older rendering behind.
      await rm(path, { force: true });
      continue;
    }
    await writeFile(path, chart.svg);
    files.push(path);
  }
  const reportPath = join(root, REPORT_FILE);
  await writeFile(reportPath, renderMarkdown(result, charts));
  files.push(reportPath);
  return { reportPath, files };
}
