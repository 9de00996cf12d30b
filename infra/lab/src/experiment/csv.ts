/** The samples of an experiment result as CSV files, for spreadsheets. */
import type { ExperimentResult } from './types.js';

export const CSV_FILES = ['streams.csv', 'nodes.csv', 'cpu.csv', 'links.csv'] as const;

export type CsvCell = string | number | boolean | null | undefined;

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export function csvField(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' && !Number.isFinite(value)) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A CSV document: header row, one line per row, `\n` line ends, trailing newline. */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  return [header, ...rows].map((row) => `${row.map(csvField).join(',')}\n`).join('');
}

/** The CSV files of a result, by file name. Times are epoch ms plus ISO 8601 (UTC). */
export function resultCsvs(result: ExperimentResult): Record<(typeof CSV_FILES)[number], string> {
  const starts = new Map<number, number>(result.scenarios.map((s) => [s.id, s.startedAt]));
  const since = (scenario: number, t: number): number | null => {
    const start = starts.get(scenario);
    return start === undefined ? null : (t - start) / 1000;
  };
  const iso = (t: number): string => (Number.isFinite(t) ? new Date(t).toISOString() : '');
  const { streams, nodes, cpu, links } = result.samples;
  return {
    'streams.csv': toCsv(
      [
        't',
        'time',
        'scenario',
        'seconds',
        'peer',
        'direction',
        'kind',
        'intervalMs',
        'packets',
        'bytes',
        'bitrateKbps',
        'lost',
        'expected',
        'latencyMeanMs',
        'latencyP50Ms',
        'latencyP95Ms',
        'latencyMaxMs',
        'latencySamples',
        'jitterMs',
        'clockOffsetMs',
      ],
      streams.map((s) => [
        s.t,
        iso(s.t),
        s.scenario,
        since(s.scenario, s.t),
        s.peer,
        s.peer === 'vn' ? 'eu->vn' : 'vn->eu',
        s.kind,
        s.intervalMs,
        s.packets,
        s.bytes,
        s.bitrateKbps,
        s.lost,
        s.expected,
        s.latencyMs.mean,
        s.latencyMs.p50,
        s.latencyMs.p95,
        s.latencyMs.max,
        s.latencySamples,
        s.jitterMs,
        s.clockOffsetMs,
      ]),
    ),
    'nodes.csv': toCsv(
      [
        't',
        'time',
        'scenario',
        'seconds',
        'node',
        'participants',
        'relayLinks',
        'relayPacketsIn',
        'relayPacketsOut',
        'clientPacketsIn',
        'clientPacketsOut',
        'redisRttMs',
      ],
      nodes.map((n) => [
        n.t,
        iso(n.t),
        n.scenario,
        since(n.scenario, n.t),
        n.node,
        n.participants,
        n.relayLinks,
        n.relayPacketsIn,
        n.relayPacketsOut,
        n.clientPacketsIn,
        n.clientPacketsOut,
        n.redisRttMs,
      ]),
    ),
    'cpu.csv': toCsv(
      ['t', 'time', 'scenario', 'seconds', 'stealPercent', 'busyPercent'],
      cpu.map((c) => [
        c.t,
        iso(c.t),
        c.scenario,
        since(c.scenario, c.t),
        c.stealPercent,
        c.busyPercent,
      ]),
    ),
    'links.csv': toCsv(
      ['scenario', 'from', 'to', 'forwarded', 'lost', 'queueDropped', 'lateUsP50', 'lateUsP99'],
      links.map((l) => [
        l.scenario,
        l.from,
        l.to,
        l.forwarded,
        l.lost,
        l.queueDropped,
        l.lateUsP50,
        l.lateUsP99,
      ]),
    ),
  };
}
