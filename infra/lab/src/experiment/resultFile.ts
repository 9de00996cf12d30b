/**
 * `result.json`, the data contract of ./types.ts on disk: reading it back and checking that it
 * has the shape the report relies on. The one place where unchecked data becomes an
 * `ExperimentResult`.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ExperimentResult } from './types.js';

export const RESULT_FILE = 'result.json';

/** Reads and minimally validates `dir/result.json`; errors say which file and what is wrong. */
export async function readResult(dir: string): Promise<ExperimentResult> {
  const file = join(resolve(dir), RESULT_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') {
      throw new Error(
        `No ${RESULT_FILE} in ${resolve(dir)}: pass the results/<timestamp> directory an experiment run wrote`,
      );
    }
    throw new Error(`Cannot read ${file}: ${errorMessage(err)}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
  return parseResult(value, file);
}

/**
 * Checks the parts of an experiment result the report relies on (not every sample field) and
 * returns it typed. Throws with up to five problems, each with its JSON path.
 */
export function parseResult(value: unknown, source = 'result'): ExperimentResult {
  const problems: string[] = [];
  if (hasResultShape(value, problems)) return value;
  const shown = problems.slice(0, 5).join('; ');
  const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
  throw new Error(`${source} is not an experiment result (version 1): ${shown}${more}`);
}

/**
 * The type guard behind `parseResult`: pushes what is wrong onto `problems`. It is the one
 * place where unchecked data becomes an `ExperimentResult`; it checks what the report reads
 * (the sample arrays are checked to be arrays, not row by row).
 */
function hasResultShape(value: unknown, problems: string[]): value is ExperimentResult {
  const need = (ok: boolean, path: string, want: string): boolean => {
    if (!ok) problems.push(`${path} should be ${want}`);
    return ok;
  };
  if (!isRecord(value)) return need(false, 'the top level', 'an object');
  const r = value;
  need(r.version === 1, 'version', `1 (got ${JSON.stringify(r.version)})`);
  for (const key of [
    'startedAt',
    'finishedAt',
    'durationPerScenarioMs',
    'sampleIntervalMs',
    'stealThresholdPercent',
  ]) {
    need(isNumber(r[key]), key, 'a number');
  }
  need(r.target === 'lab' || r.target === 'real', 'target', '"lab" or "real"');
  need(typeof r.profile === 'string', 'profile', 'a string');
  need(isRecord(r.machine), 'machine', 'an object');
  const scenarios = r.scenarios;
  if (need(Array.isArray(scenarios), 'scenarios', 'an array') && Array.isArray(scenarios)) {
    scenarios.forEach((s: unknown, i) => {
      const at = `scenarios[${i}]`;
      if (!isRecord(s)) {
        need(false, at, 'an object');
        return;
      }
      need(isNumber(s.id), `${at}.id`, 'a number');
      need(typeof s.title === 'string', `${at}.title`, 'a string');
      for (const key of ['startedAt', 'endedAt', 'measuredFrom', 'relayPackets']) {
        need(isNumber(s[key]), `${at}.${key}`, 'a number');
      }
      for (const key of ['path', 'streams', 'joins', 'errors']) {
        need(Array.isArray(s[key]), `${at}.${key}`, 'an array');
      }
      for (const key of ['nodes', 'relaySetups', 'redisRttMs']) {
        need(isRecord(s[key]), `${at}.${key}`, 'an object');
      }
      need(
        isRecord(s.steal) && typeof s.steal.flagged === 'boolean',
        `${at}.steal`,
        'an object with a boolean "flagged"',
      );
      if (Array.isArray(s.streams)) {
        s.streams.forEach((x: unknown, j) => {
          need(
            isRecord(x) && (x.peer === 'eu' || x.peer === 'vn') && isRecord(x.latencyMs),
            `${at}.streams[${j}]`,
            'a stream summary (peer, kind, latencyMs, ...)',
          );
        });
      }
    });
  }
  const samples = r.samples;
  if (isRecord(samples)) {
    for (const key of ['streams', 'nodes', 'cpu', 'links']) {
      need(Array.isArray(samples[key]), `samples.${key}`, 'an array');
    }
  } else {
    need(false, 'samples', 'an object');
  }
  return problems.length === 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
