/** A result as text: the table (Markdown, padded for a terminal), the targets and the notes. */
import os from 'node:os';
import type { BenchCell, BenchColumn, BenchResult, BenchTarget } from './result.js';

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
export function loadText(result: BenchResult): string {
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
  for (const table of result.tables ?? []) lines.push(table.title, '', renderTable(table), '');
  if (result.targets.length > 0) lines.push(...renderTargets(result.targets, false), '');
  for (const note of result.notes) lines.push(`- ${note}`);
  return lines.join('\n');
}
