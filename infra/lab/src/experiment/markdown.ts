/** `report.md`: an experiment result rendered as markdown for humans, linking the SVG charts. */
import {
  CHARTS_DIR,
  DIRECTIONS,
  directionLabel,
  type RenderedChart,
  scenarioLabel,
} from './charts.js';
import type {
  ExperimentResult,
  MediaKind,
  NodeRegion,
  Peer,
  ScenarioResult,
  StreamSummary,
} from './types.js';

const DASH = '—';
const WARN = '⚠';
const NODE_REGIONS: readonly NodeRegion[] = ['ams', 'sin', 'hcm'];

/** A number with fixed decimals; '—' for null, undefined and non-finite values. */
export function fixed(value: number | null | undefined, digits: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  const text = value.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text; // no '-0.0'
}
const ms = (v: number | null | undefined): string => fixed(v, 1);
const pct = (v: number | null | undefined): string => fixed(v, 2);
const mbps = (kbps: number | null | undefined): string =>
  kbps === null || kbps === undefined ? DASH : fixed(kbps / 1000, 2);
const kbps = (v: number | null | undefined): string => fixed(v, 1);
const count = (v: number | null | undefined): string => fixed(v, 0);

/** Settings: plain numbers without trailing zeros (60 s, 0.5 s). */
function plain(value: number): string {
  return Number.isFinite(value) ? String(Number(value.toFixed(3))) : DASH;
}

/** `YYYY-MM-DD HH:MM:SS UTC`. */
export function utc(t: number): string {
  if (!Number.isFinite(t)) return DASH;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** Text safe inside a table cell: one line, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\r?\n|\r/g, ' ').replaceAll('|', '\\|');
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function label(s: Pick<ScenarioResult, 'id' | 'title'>): string {
  return cell(scenarioLabel(s.id, s.title));
}

function stream(s: ScenarioResult, peer: Peer, kind: MediaKind): StreamSummary | undefined {
  return s.streams.find((x) => x.peer === peer && x.kind === kind);
}

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

function byId(result: ExperimentResult): ScenarioResult[] {
  return [...result.scenarios].sort((a, b) => a.id - b.id);
}

/** Per scenario, the video numbers the answer compares (both directions averaged). */
interface Comparison {
  scenario: ScenarioResult;
  latency: number | null;
  configured: number | null;
  bitrateKbps: number | null;
  directions: number;
}

function comparisons(result: ExperimentResult): Comparison[] {
  return byId(result).map((s) => {
    const video = DIRECTIONS.map((p) => stream(s, p, 'video')).filter(
      (x): x is StreamSummary => x !== undefined,
    );
    const latencies = video.flatMap((v) => (v.latencyMs.mean === null ? [] : [v.latencyMs.mean]));
    const configured = video.flatMap((v) =>
      v.configuredDelayMs === null ? [] : [v.configuredDelayMs],
    );
    return {
      scenario: s,
      latency: mean(latencies),
      configured: configured.length === video.length ? mean(configured) : null,
      bitrateKbps: mean(video.map((v) => v.avgBitrateKbps)),
      directions: latencies.length,
    };
  });
}

/** The best scenarios by `value` (ties at the shown precision included) and the runner-up. */
function rank(
  items: readonly Comparison[],
  value: (c: Comparison) => number | null,
  show: (v: number) => string,
  lowest: boolean,
): { best: Comparison[]; next: Comparison | undefined; shown: (c: Comparison) => string } | null {
  const valued = items.filter((c) => value(c) !== null);
  if (valued.length === 0) return null;
  const key = (c: Comparison): number => value(c) ?? Number.NaN;
  const sorted = [...valued].sort((a, b) => (lowest ? key(a) - key(b) : key(b) - key(a)));
  const first = sorted[0];
  if (!first) return null;
  const best = sorted.filter((c) => show(key(c)) === show(key(first)));
  return { best, next: sorted[best.length], shown: (c) => show(key(c)) };
}

function answer(result: ExperimentResult): string[] {
  const items = comparisons(result);
  const name = (c: Comparison): string => `scenario ${label(c.scenario)}`;
  const names = (cs: readonly Comparison[]): string => cs.map(name).join(' and ');
  const lines: string[] = [];

  const lat = rank(items, (c) => c.latency, ms, true);
  if (lat) {
    const [first] = lat.best;
    const partial = lat.best.some((c) => c.directions < 2) ? ', one direction only' : '';
    const tie = lat.best.length > 1 ? 'tie between ' : '';
    const next = lat.next ? `; next: ${name(lat.next)} at ${lat.shown(lat.next)} ms` : '';
    lines.push(
      `- **Lowest mean EU↔VN video latency:** ${tie}${names(lat.best)}, ${first ? lat.shown(first) : DASH} ms (mean of both directions${partial}${next}).`,
    );
  } else {
    lines.push(
      '- **Lowest mean EU↔VN video latency:** no scenario has video latency measurements.',
    );
  }

  const rate = rank(items, (c) => c.bitrateKbps, mbps, false);
  if (rate) {
    const [first] = rate.best;
    const tie = rate.best.length > 1 ? 'tie between ' : '';
    const next = rate.next ? `; next: ${name(rate.next)} at ${rate.shown(rate.next)} Mbit/s` : '';
    lines.push(
      `- **Highest received video bitrate:** ${tie}${names(rate.best)}, ${first ? rate.shown(first) : DASH} Mbit/s (mean of both directions${next}).`,
    );
  } else {
    lines.push('- **Highest received video bitrate:** no scenario has video streams.');
  }

  const expected = rank(items, (c) => c.configured, ms, true);
  if (expected && lat) {
    const agrees = expected.best.some((e) => lat.best.includes(e));
    lines.push(
      `- **Expected from the configured link delays:** ${names(expected.best)} (${expected.best[0] ? expected.shown(expected.best[0]) : DASH} ms); the measurement ${agrees ? 'agrees' : 'disagrees'}.`,
    );
  }
  const withBoth = items.filter((c) => c.latency !== null && c.configured !== null);
  if (withBoth.length > 0) {
    lines.push(
      '',
      table(
        ['Scenario', 'Configured ms', 'Measured mean ms', 'Above configured ms'],
        withBoth.map((c) => [
          label(c.scenario),
          ms(c.configured),
          ms(c.latency),
          c.latency !== null && c.configured !== null ? ms(c.latency - c.configured) : DASH,
        ]),
      ),
    );
  }
  return lines;
}

function stealNote(result: ExperimentResult, s: ScenarioResult): string {
  const st = s.steal;
  return `${WARN} Scenario ${label(s)}: CPU steal was above ${plain(result.stealThresholdPercent)} % in ${st.highIntervals} of ${st.intervals} intervals (max ${pct(st.maxPercent)} %). The tail latency (p95) of this scenario includes VM stalls and is not the network's.`;
}

function streamTable(result: ExperimentResult, kind: MediaKind): string[] {
  const scenarios = byId(result);
  const rate = kind === 'video' ? 'Mbit/s' : 'kbit/s';
  const header = ['Scenario', 'Nodes (EU / VN)', 'Relayed'];
  for (const peer of DIRECTIONS) {
    const d = directionLabel(peer);
    header.push(
      `${d} ${rate}`,
      `${d} mean ms`,
      `${d} p95 ms`,
      `${d} configured ms`,
      `${d} jitter ms`,
      `${d} loss %`,
    );
  }
  const rows = scenarios.map((s) => {
    const row = [label(s), `${s.nodes.eu} / ${s.nodes.vn}`, s.relayed ? 'yes' : 'no'];
    for (const peer of DIRECTIONS) {
      const x = stream(s, peer, kind);
      if (!x) {
        row.push(DASH, DASH, DASH, DASH, DASH, DASH);
        continue;
      }
      const p95 = ms(x.latencyMs.p95);
      row.push(
        kind === 'video' ? mbps(x.avgBitrateKbps) : kbps(x.avgBitrateKbps),
        ms(x.latencyMs.mean),
        s.steal.flagged ? `${p95} ${WARN}` : p95,
        ms(x.configuredDelayMs),
        ms(x.avgJitterMs),
        pct(x.lossPercent),
      );
    }
    return row;
  });
  const flagged = scenarios.filter((s) => s.steal.flagged);
  const notes = flagged.map((s) => stealNote(result, s));
  return [table(header, rows), ...(notes.length > 0 ? ['', ...notes] : [])];
}

function chartBlock(chart: RenderedChart | undefined): string[] {
  if (!chart) return [];
  if (chart.svg === null)
    return [`_${chart.title}: no chart (${chart.skipped ?? 'no data'})._`, ''];
  const lines = [`![${chart.title}](${CHARTS_DIR}/${chart.file})`, ''];
  if (chart.warnings.length > 0) {
    lines.push(`_Renderer warnings for ${chart.file}: ${cell(chart.warnings.join('; '))}_`, '');
  }
  return lines;
}

function joinsSection(result: ExperimentResult): string[] {
  const rows = byId(result).flatMap((s) =>
    s.joins.map((j) => [
      label(s),
      j.peer.toUpperCase(),
      j.node,
      j.ok ? 'yes' : 'no',
      ms(j.joinMs),
      ms(j.firstMediaMs),
      j.error ? cell(j.error) : '',
    ]),
  );
  const out = ['## Joins', ''];
  out.push(
    rows.length > 0
      ? table(['Scenario', 'Peer', 'Node', 'OK', 'Join ms', 'First media ms', 'Error'], rows)
      : 'No joins recorded.',
  );
  out.push('', '## Relay set-ups and Redis', '');
  out.push(
    table(
      [
        'Scenario',
        'Relay set-ups',
        'Set-up mean ms',
        'Set-up failures',
        'Relay packets',
        ...NODE_REGIONS.map((n) => `Redis RTT ${n} ms`),
      ],
      byId(result).map((s) => [
        label(s),
        count(s.relaySetups.count),
        ms(s.relaySetups.meanMs),
        count(s.relaySetups.failures),
        count(s.relayPackets),
        ...NODE_REGIONS.map((n) => ms(s.redisRttMs[n])),
      ]),
    ),
  );
  return out;
}

function stealSection(result: ExperimentResult, charts: readonly RenderedChart[]): string[] {
  const out = [
    '## CPU steal',
    '',
    `Steal is the share of an interval the hypervisor ran something else instead of this VM; an interval above ${plain(result.stealThresholdPercent)} % counts as high, and a scenario with high intervals is flagged ${WARN}.`,
    '',
    table(
      ['Scenario', 'Avg steal %', 'Max steal %', 'Intervals over threshold', 'Flagged'],
      byId(result).map((s) => [
        label(s),
        pct(s.steal.avgPercent),
        pct(s.steal.maxPercent),
        `${s.steal.highIntervals} / ${s.steal.intervals}`,
        s.steal.flagged ? `${WARN} yes` : 'no',
      ]),
    ),
    '',
    ...chartBlock(charts.find((c) => c.id === 'steal')),
  ];
  return out;
}

function linksSection(result: ExperimentResult): string[] {
  const links = [...result.samples.links].sort(
    (a, b) => a.scenario - b.scenario || a.from.localeCompare(b.from) || a.to.localeCompare(b.to),
  );
  if (links.length === 0) return [];
  return [
    '## Link emulator',
    '',
    'Counters of the user-space link emulator per directed link, cumulative over each scenario. Lateness is how late the emulator sent a packet compared with its due time.',
    '',
    table(
      [
        'Scenario',
        'From',
        'To',
        'Forwarded',
        'Lost',
        'Queue drops',
        'Lateness p50 µs',
        'Lateness p99 µs',
      ],
      links.map((l) => [
        String(l.scenario),
        l.from,
        l.to,
        count(l.forwarded),
        count(l.lost),
        count(l.queueDropped),
        count(l.lateUsP50),
        count(l.lateUsP99),
      ]),
    ),
    '',
  ];
}

function errorsSection(result: ExperimentResult): string[] {
  const withErrors = byId(result).filter(
    (s) => s.errors.length > 0 || (s.retriedErrors?.length ?? 0) > 0,
  );
  const out = ['## Errors', ''];
  if (withErrors.length === 0) return [...out, 'No scenario reported errors.', ''];
  for (const s of withErrors) {
    out.push(`### ${label(s)}`, '', ...s.errors.map((e) => `- ${cell(e)}`));
    const retried = s.retriedErrors ?? [];
    if (retried.length > 0) {
      out.push(
        `- Run ${s.attempts ?? retried.length + 1} times; the earlier attempts failed (their samples are not in the results):`,
        ...retried.map((e) => `  - ${cell(e)}`),
      );
    }
    out.push('');
  }
  return out;
}

function howToRead(result: ExperimentResult): string[] {
  const clock =
    result.target === 'lab'
      ? 'All lab hosts are network namespaces of one machine and share one clock, so no clock correction is applied.'
      : 'The bots run on different machines; the latency is corrected by the measured clock offset between them (`clockOffsetMs` in streams.csv), and any error of that offset adds to the latency.';
  return [
    '## How to read this',
    '',
    `**Latency** is one-way: the arrival time at the receiving bot minus the send timestamp the publishing bot wrote into the packet. ${clock} "EU→VN" is what the VN bot received from the EU bot. Tables use the measured window only (after joins and a warm-up); charts show the whole scenario, with seconds since the scenario started on the time axis.`,
    '',
    '**Bitrate** is what the receiver got (unique packets, headers included), not what the sender sent. **Jitter** is the RFC 3550 interarrival jitter (the smoothed variation of transit time between consecutive packets), averaged over the sampling intervals. **Loss** is sequence gaps that were never filled, as a share of the packets expected.',
    '',
    `**Configured** is the sum of the emulated one-way link delays on the path (the lab's link profile); the measured latency cannot be lower, and what it adds on top is SFU forwarding, the relay hop, emulator scheduling and the bots' own processing. So the expected difference between scenarios is the difference of their configured delays: a relayed route pays one more SFU hop and the inter-node link, and wins only when that link is faster than the path it replaces. Differences well beyond the configured ones point at the cluster, not the network.`,
    '',
    `**${WARN}** marks p95 values of scenarios where the VM lost CPU to the hypervisor (steal above the threshold): stalls of the machine delay packets in bursts, so the tail of those scenarios is not the network's.`,
    '',
  ];
}

/** The report as markdown; charts are linked by relative paths under `charts/`. */
export function renderMarkdown(result: ExperimentResult, charts: readonly RenderedChart[]): string {
  const scenarios = byId(result);
  const m = result.machine;
  const profileLabel = result.target === 'lab' ? 'profile' : 'deployment';
  const chart = (id: RenderedChart['id']): string[] => chartBlock(charts.find((c) => c.id === id));
  const lines: string[] = [
    `# Latency experiment, ${utc(result.startedAt)}, ${result.target} (${profileLabel}: ${cell(result.profile)})`,
    '',
    `Run from ${utc(result.startedAt)} to ${utc(result.finishedAt)}, ${scenarios.length} scenario${scenarios.length === 1 ? '' : 's'}.`,
    '',
    '## Answer',
    '',
    ...answer(result),
    '',
    '## Run settings',
    '',
    table(
      ['Setting', 'Value'],
      [
        ['Target', result.target],
        [profileLabel === 'profile' ? 'Link profile' : 'Deployment', cell(result.profile)],
        ['Duration per scenario', `${plain(result.durationPerScenarioMs / 1000)} s`],
        ['Sample interval', `${plain(result.sampleIntervalMs)} ms`],
        ['Steal threshold', `${plain(result.stealThresholdPercent)} %`],
        [
          'Machine',
          cell(`${m.hostname}: ${m.cpus} × ${m.model}, kernel ${m.kernel}, Node ${m.node}`),
        ],
      ],
    ),
    '',
    '## Scenarios',
    '',
    table(
      [
        'Scenario',
        'Path',
        'Nodes (EU / VN)',
        'Relayed',
        'Started',
        'Start-up + warm-up s',
        'Measured s',
      ],
      scenarios.map((s) => [
        label(s),
        cell(s.path.join(' → ')),
        `${s.nodes.eu} / ${s.nodes.vn}`,
        s.relayed ? 'yes' : 'no',
        utc(s.startedAt),
        fixed((s.measuredFrom - s.startedAt) / 1000, 1),
        fixed((s.endedAt - s.measuredFrom) / 1000, 1),
      ]),
    ),
    '',
    '## Video',
    '',
    ...streamTable(result, 'video'),
    '',
    '## Audio',
    '',
    ...streamTable(result, 'audio'),
    '',
    '## Charts',
    '',
    ...chart('latency-by-scenario'),
    ...chart('latency'),
    ...chart('latency-p95'),
    ...chart('bitrate'),
    ...chart('jitter'),
    ...joinsSection(result),
    '',
    ...stealSection(result, charts),
    ...linksSection(result),
    ...errorsSection(result),
    ...howToRead(result),
  ];
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}
