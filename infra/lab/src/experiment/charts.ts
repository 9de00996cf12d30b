/**
 * Charts of an experiment run, as Vega-Lite specs rendered to SVG by Vega's headless
 * (`renderer: 'none'`) view: no canvas, no browser. `planCharts` is pure (result -> specs), so a
 * spec can be inspected or pasted into the Vega editor; `renderCharts` turns the plans into SVG.
 *
 * Time series use seconds since the scenario's `startedAt` on the x axis so that the scenarios
 * overlay; a dotted vertical line per scenario marks where its measured window begins (the
 * summaries in the report cover only that window).
 */
import { logger, parse, View, Warn } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ExperimentResult, Peer, ScenarioId, StreamSample } from './types.js';

/**
 * Where the SVGs go, relative to the output directory: ./report.ts writes them there and
 * ./markdown.ts links them there.
 */
export const CHARTS_DIR = 'charts';
export const CHART_WIDTH = 720;
const CHART_HEIGHT = 300;
/** Draw a dot per sample when no line has more samples than this. */
const SPARSE_SAMPLES = 15;

export type ChartId =
  | 'latency'
  | 'latency-p95'
  | 'bitrate'
  | 'jitter'
  | 'latency-by-scenario'
  | 'steal';

export interface ChartPlan {
  id: ChartId;
  /** File name under `charts/`, e.g. `latency.svg`. */
  file: string;
  title: string;
  /** The Vega-Lite spec; null when there is nothing to draw. */
  spec: TopLevelSpec | null;
  /** Why the chart was skipped (when `spec` is null). */
  skipped: string | null;
}

export interface RenderedChart {
  id: ChartId;
  file: string;
  title: string;
  /** The SVG document; null when the chart was skipped. */
  svg: string | null;
  skipped: string | null;
  /** Warnings of the Vega-Lite compiler and the Vega runtime (empty when all went well). */
  warnings: string[];
}

/** Direction of a stream by its receiving peer: what `vn` receives was sent by `eu`. */
export function directionLabel(receiver: Peer): string {
  return receiver === 'vn' ? 'EU→VN' : 'VN→EU';
}

export const DIRECTIONS: readonly Peer[] = ['vn', 'eu'];

export function scenarioLabel(id: ScenarioId | number, title: string | undefined): string {
  return title ? `${id} · ${title}` : `Scenario ${id}`;
}

/**
 * Vega measures text by estimate when it has no canvas (about 0.8 em per character, wider than
 * real fonts), so its default limits would cut scenario titles short with an ellipsis.
 */
const NO_LIMIT = { labelLimit: 0, titleLimit: 0 } as const;
/** Line-chart legends: strokes (so the direction legend shows its dashes even with dots on). */
const LINE_LEGEND = {
  ...NO_LIMIT,
  orient: 'bottom',
  symbolType: 'stroke',
  symbolStrokeWidth: 2,
} as const;

const TIME_AXIS_TITLE = 'Time since scenario start (s)';

interface SeriesRow {
  scenario: string;
  direction: string;
  t: number;
  mean: number | null;
  p95: number | null;
  mbps: number;
  jitter: number;
}

interface WindowRow {
  scenario: string;
  t: number;
}

/** Scenario labels and time origins, including scenarios only the samples mention. */
class ScenarioIndex {
  readonly labels: string[] = [];
  private readonly byId = new Map<number, { label: string; startedAt: number }>();

  constructor(result: ExperimentResult) {
    for (const s of [...result.scenarios].sort((a, b) => a.id - b.id)) {
      this.add(s.id, scenarioLabel(s.id, s.title), s.startedAt);
    }
    const samples = [...result.samples.streams, ...result.samples.cpu];
    const unknown = new Map<number, number>();
    for (const s of samples) {
      if (this.byId.has(s.scenario)) continue;
      const start = s.t - result.sampleIntervalMs;
      unknown.set(s.scenario, Math.min(unknown.get(s.scenario) ?? start, start));
    }
    for (const [id, start] of [...unknown].sort((a, b) => a[0] - b[0])) {
      this.add(id, scenarioLabel(id, undefined), start);
    }
  }

  private add(id: number, label: string, startedAt: number): void {
    this.byId.set(id, { label, startedAt });
    this.labels.push(label);
  }

  label(id: number): string {
    return this.byId.get(id)?.label ?? scenarioLabel(id, undefined);
  }

  /** Seconds since the scenario's start, to the millisecond. */
  seconds(id: number, t: number): number {
    const start = this.byId.get(id)?.startedAt ?? t;
    return Math.round(t - start) / 1000;
  }
}

function timeSeriesSpec(o: {
  title: string;
  subtitle: string[];
  rows: object[];
  yField: string;
  yTitle: string;
  scenarios: string[];
  windows: WindowRow[];
  /** Encode the direction with the stroke dash (stream charts); absent for machine charts. */
  directions: boolean;
  points: boolean;
  extraLayers?: TopLevelLayer[];
}): TopLevelSpec {
  const color = {
    field: 'scenario',
    type: 'nominal',
    scale: { domain: o.scenarios },
    legend: { title: 'Scenario', direction: 'vertical', ...LINE_LEGEND },
  } as const;
  const x = {
    field: 't',
    type: 'quantitative',
    title: TIME_AXIS_TITLE,
    scale: { zero: true },
  } as const;
  const y = { field: o.yField, type: 'quantitative', title: o.yTitle } as const;
  const line: TopLevelLayer = {
    data: { values: o.rows },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x,
      y,
      color,
      ...(o.directions
        ? {
            strokeDash: {
              field: 'direction',
              type: 'nominal',
              scale: { domain: DIRECTIONS.map(directionLabel) },
              legend: { title: 'Direction (sender→receiver)', ...LINE_LEGEND },
            },
          }
        : {}),
    },
  };
  const layers: TopLevelLayer[] = [line];
  if (o.points) {
    // Dots on sparse lines, in a layer of their own without the stroke dash, so that the
    // direction legend still shows dashes.
    layers.push({
      data: { values: o.rows },
      mark: { type: 'point', filled: true, size: 16, opacity: 1 },
      encoding: { x, y, color },
    });
  }
  if (o.windows.length > 0) {
    layers.push({
      data: { values: o.windows },
      mark: { type: 'rule', strokeDash: [2, 3] },
      encoding: { x: { field: 't', type: 'quantitative' }, color },
    });
  }
  layers.push(...(o.extraLayers ?? []));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: o.title, subtitle: o.subtitle, anchor: 'start' },
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    layer: layers,
  };
}

/** One layer of a layered spec (the element type of `layer`). */
type TopLevelLayer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number];

const WINDOW_NOTE = 'Dotted vertical lines: start of each scenario’s measured window.';

function streamCharts(result: ExperimentResult, index: ScenarioIndex): ChartPlan[] {
  const video = result.samples.streams.filter((s: StreamSample) => s.kind === 'video');
  const rows: SeriesRow[] = video
    .slice()
    .sort((a, b) => a.scenario - b.scenario || a.peer.localeCompare(b.peer) || a.t - b.t)
    .map((s) => ({
      scenario: index.label(s.scenario),
      direction: directionLabel(s.peer),
      t: index.seconds(s.scenario, s.t),
      mean: s.latencyMs.mean,
      p95: s.latencyMs.p95,
      mbps: s.bitrateKbps / 1000,
      jitter: s.jitterMs,
    }));
  const present = new Set(video.map((s) => s.scenario));
  const windows: WindowRow[] = result.scenarios
    .filter((s) => present.has(s.id) && s.measuredFrom > s.startedAt)
    .map((s) => ({ scenario: index.label(s.id), t: index.seconds(s.id, s.measuredFrom) }));
  const perLine = new Map<string, number>();
  for (const r of rows) {
    const key = `${r.scenario}\u0000${r.direction}`;
    perLine.set(key, (perLine.get(key) ?? 0) + 1);
  }
  const points = Math.max(0, ...perLine.values()) <= SPARSE_SAMPLES;
  const base = { scenarios: index.labels, windows, directions: true, points };

  const plan = (
    id: ChartId,
    title: string,
    has: (r: SeriesRow) => boolean,
    empty: string,
    spec: Omit<Parameters<typeof timeSeriesSpec>[0], keyof typeof base | 'rows' | 'title'>,
  ): ChartPlan => {
    // Rows without a value stay in: Vega-Lite breaks the line there instead of bridging the gap.
    if (!rows.some(has)) return { id, file: `${id}.svg`, title, spec: null, skipped: empty };
    return {
      id,
      file: `${id}.svg`,
      title,
      spec: timeSeriesSpec({ ...base, ...spec, title, rows }),
      skipped: null,
    };
  };

  return [
    plan(
      'latency',
      'One-way video latency over time (interval mean)',
      (r) => r.mean !== null,
      'no video sample has a latency measurement',
      {
        subtitle: [
          'Arrival minus the sender’s timestamp, mean of each sampling interval.',
          WINDOW_NOTE,
        ],
        yField: 'mean',
        yTitle: 'One-way latency, interval mean (ms)',
      },
    ),
    plan(
      'latency-p95',
      'One-way video latency over time (interval p95)',
      (r) => r.p95 !== null,
      'no video sample has a latency p95',
      {
        subtitle: ['95th percentile of each sampling interval’s packets.', WINDOW_NOTE],
        yField: 'p95',
        yTitle: 'One-way latency, interval p95 (ms)',
      },
    ),
    plan('bitrate', 'Received video bitrate over time', () => true, 'no video samples', {
      subtitle: [
        'What the receiving bot got per sampling interval (headers included).',
        WINDOW_NOTE,
      ],
      yField: 'mbps',
      yTitle: 'Received bitrate (Mbit/s)',
    }),
    plan('jitter', 'Video interarrival jitter over time', () => true, 'no video samples', {
      subtitle: ['RFC 3550 interarrival jitter at the end of each interval.', WINDOW_NOTE],
      yField: 'jitter',
      yTitle: 'Interarrival jitter (ms)',
    }),
  ];
}

interface BarRow {
  scenario: string;
  direction: string;
  mean: number;
}

interface TickRow {
  scenario: string;
  direction: string;
  configured: number;
}

function latencyBars(result: ExperimentResult, index: ScenarioIndex): ChartPlan {
  const id: ChartId = 'latency-by-scenario';
  const title = 'Mean one-way video latency by scenario and direction';
  const bars: BarRow[] = [];
  const ticks: TickRow[] = [];
  for (const s of [...result.scenarios].sort((a, b) => a.id - b.id)) {
    for (const peer of DIRECTIONS) {
      const stream = s.streams.find((x) => x.kind === 'video' && x.peer === peer);
      if (!stream) continue;
      const row = { scenario: index.label(s.id), direction: directionLabel(peer) };
      if (stream.latencyMs.mean !== null) bars.push({ ...row, mean: stream.latencyMs.mean });
      if (stream.configuredDelayMs !== null) {
        ticks.push({ ...row, configured: stream.configuredDelayMs });
      }
    }
  }
  if (bars.length === 0) {
    return {
      id,
      file: `${id}.svg`,
      title,
      spec: null,
      skipped: 'no scenario has a video latency summary',
    };
  }
  const y = {
    field: 'scenario',
    type: 'nominal',
    sort: index.labels,
    scale: { domain: index.labels.filter((l) => bars.some((b) => b.scenario === l)) },
    axis: { title: null, labelLimit: 0 },
  } as const;
  const yOffset = {
    field: 'direction',
    type: 'nominal',
    scale: { domain: DIRECTIONS.map(directionLabel) },
  } as const;
  const x = {
    field: 'mean',
    type: 'quantitative',
    title: 'One-way latency, mean over the measured window (ms)',
  } as const;
  const layers: TopLevelLayer[] = [
    {
      data: { values: bars },
      mark: { type: 'bar' },
      encoding: {
        y,
        yOffset,
        x,
        color: {
          field: 'direction',
          type: 'nominal',
          scale: { domain: DIRECTIONS.map(directionLabel) },
          legend: { title: 'Direction (sender→receiver)', orient: 'bottom', ...NO_LIMIT },
        },
      },
    },
    {
      data: { values: bars },
      mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 },
      encoding: { y, yOffset, x, text: { field: 'mean', type: 'quantitative', format: '.1f' } },
    },
  ];
  if (ticks.length > 0) {
    layers.push({
      data: { values: ticks },
      mark: { type: 'tick', color: 'black', thickness: 2 },
      encoding: { y, yOffset, x: { field: 'configured', type: 'quantitative' } },
    });
  }
  return {
    id,
    file: `${id}.svg`,
    title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: title,
        subtitle:
          ticks.length > 0
            ? ['Black tick: configured delay (sum of the emulated link delays on the path).']
            : ['No configured delay recorded for these paths.'],
        anchor: 'start',
      },
      width: CHART_WIDTH,
      height: { step: 18 },
      layer: layers,
    },
    skipped: null,
  };
}

function stealChart(result: ExperimentResult, index: ScenarioIndex): ChartPlan {
  const id: ChartId = 'steal';
  const title = 'CPU steal over time';
  const cpu = result.samples.cpu;
  if (cpu.length === 0) {
    return { id, file: `${id}.svg`, title, spec: null, skipped: 'no CPU samples' };
  }
  const rows = cpu
    .slice()
    .sort((a, b) => a.scenario - b.scenario || a.t - b.t)
    .map((s) => ({
      scenario: index.label(s.scenario),
      t: index.seconds(s.scenario, s.t),
      steal: s.stealPercent,
    }));
  const present = new Set(cpu.map((s) => s.scenario));
  const windows = result.scenarios
    .filter((s) => present.has(s.id) && s.measuredFrom > s.startedAt)
    .map((s) => ({ scenario: index.label(s.id), t: index.seconds(s.id, s.measuredFrom) }));
  const perScenario = new Map<string, number>();
  for (const r of rows) perScenario.set(r.scenario, (perScenario.get(r.scenario) ?? 0) + 1);
  const threshold = result.stealThresholdPercent;
  return {
    id,
    file: `${id}.svg`,
    title,
    spec: timeSeriesSpec({
      title,
      subtitle: [
        `Share of each interval the hypervisor took from this VM; red line: the ${threshold} % threshold.`,
        WINDOW_NOTE,
      ],
      rows,
      yField: 'steal',
      yTitle: 'CPU steal (% of all CPUs)',
      scenarios: index.labels,
      windows,
      directions: false,
      points: Math.max(0, ...perScenario.values()) <= SPARSE_SAMPLES,
      extraLayers: [
        {
          data: { values: [{}] }, // one rule; without data of its own the layer draws nothing
          mark: { type: 'rule', color: '#c0392b', strokeDash: [6, 4], strokeWidth: 1.5 },
          encoding: { y: { datum: threshold, type: 'quantitative' } },
        },
      ],
    }),
    skipped: null,
  };
}

/** The charts of a run as Vega-Lite specs, in the order the report shows them. */
export function planCharts(result: ExperimentResult): ChartPlan[] {
  const index = new ScenarioIndex(result);
  return [...streamCharts(result, index), latencyBars(result, index), stealChart(result, index)];
}

/** Compiles a Vega-Lite spec and renders it to an SVG document without a browser. */
export async function renderSvg(spec: TopLevelSpec): Promise<{ svg: string; warnings: string[] }> {
  const warnings: string[] = [];
  const log = logger(Warn, 'log', (_method, level, args) => {
    warnings.push(`${level} ${args.map(String).join(' ')}`);
  });
  const { spec: vega } = compile(spec, { logger: log });
  const view = new View(parse(vega), { renderer: 'none', logger: log });
  try {
    return { svg: await view.toSVG(), warnings };
  } finally {
    view.finalize();
  }
}

/** Plans and renders all charts; skipped charts have `svg: null` and a reason. */
export async function renderCharts(result: ExperimentResult): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const plan of planCharts(result)) {
    const { spec, ...rest } = plan;
    if (spec === null) {
      out.push({ ...rest, svg: null, warnings: [] });
      continue;
    }
    const { svg, warnings } = await renderSvg(spec);
    out.push({ ...rest, svg, warnings });
  }
  return out;
}
