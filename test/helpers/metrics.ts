import { parsePromText, sumMetric } from '../../infra/lab/src/experiment/promText.js';

/** Reads a node's /metrics and returns the value of one sample (0 when absent). */
export async function metricValue(
  baseUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return sampleSum(await (await fetch(`${baseUrl}/metrics`)).text(), name, labels);
}

/**
 * The sum of the samples of `name` whose labels include `labels`, in a Prometheus text
 * exposition (0 when none matches). Reading one text for several values gives one snapshot.
 */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number {
  return sumMetric(parsePromText(text), name, labels);
}

/** Metric families (`# TYPE name type`) of an exposition: name → type. */
export function metricFamilies(text: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(m[1] ?? '', m[2] ?? '');
  return families;
}

/** Label sets of the samples of `name` (for histograms: pass `name_count`). */
export function sampleLabels(text: string, name: string): Record<string, string>[] {
  return parsePromText(text)
    .filter((sample) => sample.name === name)
    .map((sample) => sample.labels);
}
