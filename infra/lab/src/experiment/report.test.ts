import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planCharts } from './charts.js';
import { csvField, toCsv } from './csv.js';
import { renderReport, writeResults } from './report.js';
import { parseResult } from './resultFile.js';
import type {
  CpuSample,
  ExperimentResult,
  LinkSample,
  MediaKind,
  NodeSample,
  Peer,
  ScenarioId,
  ScenarioResult,
  StreamSample,
  StreamSummary,
} from './types.js';

const T0 = Date.UTC(2025, 4, 6, 10, 0, 0);
const INTERVAL = 1_000;
const SAMPLES_PER_STREAM = 4;

function summary(
  peer: Peer,
  kind: MediaKind,
  v: {
    kbps: number;
    mean: number;
    p95: number;
    configured: number | null;
    jitter: number;
    loss: number;
  },
): StreamSummary {
  return {
    peer,
    kind,
    avgBitrateKbps: v.kbps,
    latencyMs: { mean: v.mean, p50: v.mean - 1, p95: v.p95, p99: v.p95 + 5 },
    avgJitterMs: v.jitter,
    lossPercent: v.loss,
    packets: 1_000,
    configuredDelayMs: v.configured,
  };
}

function samplesOf(id: ScenarioId, startedAt: number, baseMs: number): StreamSample[] {
  const out: StreamSample[] = [];
  for (const peer of ['eu', 'vn'] as const) {
    for (const kind of ['video', 'audio'] as const) {
      for (let i = 1; i <= SAMPLES_PER_STREAM; i++) {
        const mean = baseMs + i + (peer === 'eu' ? 3 : 0);
        out.push({
          t: startedAt + i * INTERVAL,
          scenario: id,
          peer,
          kind,
          intervalMs: INTERVAL,
          packets: kind === 'video' ? 220 : 50,
          bytes: kind === 'video' ? 300_000 : 6_000,
          bitrateKbps: kind === 'video' ? 2_400 + 10 * i : 48,
          lost: i === 2 ? 1 : 0,
          expected: kind === 'video' ? 221 : 50,
          // One interval without latency: the line must break there, not fail.
          latencyMs:
            i === 3 && kind === 'audio'
              ? { mean: null, p50: null, p95: null, max: null }
              : { mean, p50: mean - 0.5, p95: mean + 8, max: mean + 20 },
          latencySamples: kind === 'video' ? 220 : 50,
          jitterMs: 1.5 + i / 10,
          clockOffsetMs: 0,
        });
      }
    }
  }
  return out;
}

function scenario(
  id: ScenarioId,
  startedAt: number,
  over: Partial<ScenarioResult> & Pick<ScenarioResult, 'title' | 'streams' | 'steal'>,
): ScenarioResult {
  return {
    id,
    path: ['eu-client', 'ams', 'vn-client'],
    nodes: { eu: 'ams', vn: 'ams' },
    relayed: false,
    startedAt,
    endedAt: startedAt + 5 * INTERVAL,
    measuredFrom: startedAt + 2 * INTERVAL,
    joins: [
      { peer: 'eu', node: 'ams', ok: true, joinMs: 41.26, firstMediaMs: 310.04 },
      { peer: 'vn', node: 'ams', ok: true, joinMs: 352.71, firstMediaMs: 498.5 },
    ],
    relaySetups: { count: 0, meanMs: null, failures: 0 },
    relayPackets: 0,
    redisRttMs: { ams: 0.42 },
    errors: [],
    ...over,
  };
}

function fixture(): ExperimentResult {
  const s1Start = T0;
  const s2Start = T0 + 10 * INTERVAL;
  const s1 = scenario(1, s1Start, {
    title: 'EU -> Amsterdam -> VN',
    streams: [
      summary('vn', 'video', {
        kbps: 2_500,
        mean: 161.27,
        p95: 170.44,
        configured: 150,
        jitter: 2.13,
        loss: 0.25,
      }),
      summary('eu', 'video', {
        kbps: 2_400,
        mean: 158.43,
        p95: 166.08,
        configured: 150,
        jitter: 1.96,
        loss: 0,
      }),
      summary('vn', 'audio', {
        kbps: 48.31,
        mean: 159.02,
        p95: 162.66,
        configured: 150,
        jitter: 0.87,
        loss: 1.5,
      }),
      summary('eu', 'audio', {
        kbps: 47.94,
        mean: 157.11,
        p95: 160.02,
        configured: 150,
        jitter: 0.91,
        loss: 0,
      }),
    ],
    steal: { avgPercent: 3.456, maxPercent: 27.5, highIntervals: 2, intervals: 4, flagged: true },
  });
  const s2 = scenario(2, s2Start, {
    title: 'EU -> AMS -> relay -> HCM -> VN',
    path: ['eu-client', 'ams', 'hcm', 'vn-client'],
    nodes: { eu: 'ams', vn: 'hcm' },
    relayed: true,
    joins: [
      { peer: 'eu', node: 'ams', ok: true, joinMs: 39.9, firstMediaMs: 402.33 },
      {
        peer: 'vn',
        node: 'hcm',
        ok: false,
        joinMs: null,
        firstMediaMs: null,
        error: 'join | timeout',
      },
    ],
    streams: [
      summary('vn', 'video', {
        kbps: 2_600,
        mean: 183.1,
        p95: 190.94,
        configured: 175,
        jitter: 3.02,
        loss: 0.5,
      }),
      summary('eu', 'video', {
        kbps: 2_700,
        mean: 185.9,
        p95: 199.57,
        configured: null,
        jitter: 2.88,
        loss: 0.12,
      }),
    ],
    relaySetups: { count: 2, meanMs: 12.345, failures: 1 },
    relayPackets: 4_321,
    redisRttMs: { ams: 0.5, hcm: 1.25 },
    steal: { avgPercent: 0.1, maxPercent: 0.4, highIntervals: 0, intervals: 4, flagged: false },
    errors: ['relay, "ams->hcm" reset'],
  });
  const cpu: CpuSample[] = [];
  for (const [id, start, steal] of [
    [1, s1Start, [0.5, 27.5, 12, 0.2]],
    [2, s2Start, [0.1, 0.4, 0, 0]],
  ] as const) {
    steal.forEach((p, i) => {
      cpu.push({ t: start + (i + 1) * INTERVAL, scenario: id, stealPercent: p, busyPercent: 40 });
    });
  }
  // Node samples for scenario 1 only: scenario 2 has none.
  const nodes: NodeSample[] = [1, 2, 3].map((i) => ({
    t: s1Start + i * INTERVAL,
    scenario: 1,
    node: 'ams',
    participants: 2,
    relayLinks: 0,
    relayPacketsIn: 0,
    relayPacketsOut: 0,
    clientPacketsIn: 100 * i,
    clientPacketsOut: 100 * i,
    redisRttMs: i === 2 ? null : 0.4,
  }));
  const links: LinkSample[] = [
    {
      scenario: 1,
      from: 'eu-client',
      to: 'ams',
      forwarded: 900,
      lost: 3,
      queueDropped: 0,
      lateUsP50: 80,
      lateUsP99: 950,
    },
    {
      scenario: 2,
      from: 'ams',
      to: 'hcm',
      forwarded: 1200,
      lost: 0,
      queueDropped: 7,
      lateUsP50: 75,
      lateUsP99: 1210,
    },
  ];
  return {
    version: 1,
    startedAt: T0,
    finishedAt: s2Start + 6 * INTERVAL,
    target: 'lab',
    profile: 'public-2025',
    durationPerScenarioMs: 5_000,
    sampleIntervalMs: INTERVAL,
    stealThresholdPercent: 5,
    machine: { cpus: 4, model: 'Test CPU', kernel: '6.8.0', node: 'v20.20.2', hostname: 'lab-1' },
    scenarios: [s2, s1], // out of order on purpose: the report sorts by id
    samples: {
      streams: [...samplesOf(1, s1Start, 155), ...samplesOf(2, s2Start, 180)],
      nodes,
      cpu,
      links,
    },
  };
}

/** The table row of a scenario in the section that starts with `heading`. */
function row(md: string, heading: string, scenarioId: number): string[] {
  const start = md.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `section ${heading} missing`);
  const end = md.indexOf('\n## ', start + 1);
  const section = md.slice(start, end < 0 ? undefined : end);
  const lines = section.split('\n').filter((l) => l.startsWith(`| ${scenarioId} · `));
  assert.equal(lines.length, 1, `one row for scenario ${scenarioId} in ${heading}`);
  const line = lines[0] ?? '';
  return line
    .slice(2, -2)
    .split(/(?<!\\) \| /)
    .map((c) => c.trim());
}

const CHART_FILES = [
  'latency.svg',
  'latency-p95.svg',
  'bitrate.svg',
  'jitter.svg',
  'latency-by-scenario.svg',
  'steal.svg',
];

describe('experiment report', () => {
  let dir = '';
  let md = '';
  let written: { reportPath: string; files: string[] };
  const result = fixture();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lab-report-'));
    written = await writeResults(join(dir, 'run'), result);
    md = await readFile(written.reportPath, 'utf8');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes result.json, the CSVs, the charts and report.md', async () => {
    const run = join(dir, 'run');
    assert.equal(written.reportPath, join(run, 'report.md'));
    for (const name of ['result.json', 'streams.csv', 'nodes.csv', 'cpu.csv', 'links.csv']) {
      assert.ok(written.files.includes(join(run, name)), name);
    }
    for (const name of CHART_FILES)
      assert.ok(written.files.includes(join(run, 'charts', name)), name);
    const back: unknown = JSON.parse(await readFile(join(run, 'result.json'), 'utf8'));
    assert.deepEqual(back, result);
  });

  it('puts one video row per scenario with formatted numbers and the steal marker', () => {
    assert.deepEqual(row(md, '## Video', 1), [
      '1 · EU -> Amsterdam -> VN',
      'ams / ams',
      'no',
      // EU→VN (received by vn): Mbit/s, mean, p95, configured, jitter, loss %
      '2.50',
      '161.3',
      '170.4 ⚠',
      '150.0',
      '2.1',
      '0.25',
      // VN→EU
      '2.40',
      '158.4',
      '166.1 ⚠',
      '150.0',
      '2.0',
      '0.00',
    ]);
    assert.deepEqual(row(md, '## Video', 2), [
      '2 · EU -> AMS -> relay -> HCM -> VN',
      'ams / hcm',
      'yes',
      '2.60',
      '183.1',
      '190.9',
      '175.0',
      '3.0',
      '0.50',
      '2.70',
      '185.9',
      '199.6',
      '—',
      '2.9',
      '0.12',
    ]);
    assert.ok(md.indexOf('## Video') < md.indexOf('## Audio'));
    // EU→VN is what the VN bot received: its columns come first and hold the `vn` summaries.
    assert.ok(
      md.includes(
        '| Scenario | Nodes (EU / VN) | Relayed | EU→VN Mbit/s | EU→VN mean ms | EU→VN p95 ms | EU→VN configured ms | EU→VN jitter ms | EU→VN loss % | VN→EU Mbit/s | VN→EU mean ms |',
      ),
    );
  });

  it('puts audio in its own table (kbit/s, missing streams as —)', () => {
    assert.deepEqual(row(md, '## Audio', 1).slice(3, 9), [
      '48.3',
      '159.0',
      '162.7 ⚠',
      '150.0',
      '0.9',
      '1.50',
    ]);
    assert.deepEqual(row(md, '## Audio', 2).slice(3), Array(12).fill('—'));
  });

  it('marks and footnotes only the flagged scenario', () => {
    for (const heading of ['## Video', '## Audio', '## CPU steal']) {
      assert.ok(
        row(md, heading, 1).some((c) => c.includes('⚠')),
        `${heading} flagged row`,
      );
      assert.ok(!row(md, heading, 2).some((c) => c.includes('⚠')), `${heading} unflagged row`);
    }
    const notes = md.split('\n').filter((l) => l.includes('includes VM stalls'));
    assert.ok(notes.length >= 1);
    for (const note of notes.filter((l) => l.startsWith('⚠ Scenario'))) {
      assert.match(
        note,
        /^⚠ Scenario 1 · EU -> Amsterdam -> VN: CPU steal was above 5 % in 2 of 4/,
      );
      assert.doesNotMatch(note, /Scenario 2/);
    }
    assert.equal(notes.filter((l) => l.startsWith('⚠ Scenario')).length, 2); // video + audio
    assert.deepEqual(row(md, '## CPU steal', 1).slice(1), ['3.46', '27.50', '2 / 4', '⚠ yes']);
  });

  it('answers from the data', () => {
    const latency = md
      .split('\n')
      .find((l) => l.startsWith('- **Lowest mean EU↔VN video latency:**'));
    assert.match(latency ?? '', /scenario 1 · EU -> Amsterdam -> VN, 159\.9 ms/);
    assert.match(latency ?? '', /next: scenario 2 · .* at 184\.5 ms/);
    const bitrate = md
      .split('\n')
      .find((l) => l.startsWith('- **Highest received video bitrate:**'));
    assert.match(bitrate ?? '', /scenario 2 · EU -> AMS -> relay -> HCM -> VN, 2\.65 Mbit\/s/);
  });

  it('has the header, settings, joins, relay/Redis, links, errors and charts', () => {
    assert.match(
      md,
      /^# Latency experiment, 2025-05-06 10:00:00 UTC, lab \(profile: public-2025\)\n/,
    );
    assert.match(md, /\| Duration per scenario \| 5 s \|/);
    assert.match(md, /\| Sample interval \| 1000 ms \|/);
    assert.match(md, /\| Machine \| lab-1: 4 × Test CPU, kernel 6\.8\.0, Node v20\.20\.2 \|/);
    assert.match(
      md,
      /\| 1 · EU -> Amsterdam -> VN \| EU \| ams \| yes \| 41\.3 \| 310\.0 \| {2}\|/,
    );
    assert.match(
      md,
      /\| 2 · EU -> AMS -> relay -> HCM -> VN \| VN \| hcm \| no \| — \| — \| join \\\| timeout \|/,
    );
    assert.deepEqual(row(md, '## Relay set-ups and Redis', 2).slice(1), [
      '2',
      '12.3',
      '1',
      '4321',
      '0.5',
      '—',
      '1.3',
    ]);
    assert.match(md, /\| 2 \| ams \| hcm \| 1200 \| 0 \| 7 \| 75 \| 1210 \|/);
    assert.match(md, /### 2 · EU -> AMS -> relay -> HCM -> VN\n\n- relay, "ams->hcm" reset/);
    assert.match(md, /## How to read this/);
    for (const file of CHART_FILES) assert.ok(md.includes(`](charts/${file})`), file);
    assert.doesNotMatch(md, /Renderer warnings/);
  });

  it('renders SVG charts that carry the data', async () => {
    const svgs = new Map<string, string>();
    for (const file of CHART_FILES) {
      const svg = await readFile(join(dir, 'run', 'charts', file), 'utf8');
      assert.ok(svg.startsWith('<svg'), `${file} is an SVG document`);
      assert.match(svg, /<path/, file);
      svgs.set(file, svg);
    }
    for (const file of [
      'latency.svg',
      'latency-p95.svg',
      'bitrate.svg',
      'jitter.svg',
      'steal.svg',
    ]) {
      const svg = svgs.get(file) ?? '';
      assert.ok(svg.includes('Time since scenario start (s)'), `${file} x axis title`);
      assert.ok(svg.includes('1 · EU -&gt; Amsterdam -&gt; VN'), `${file} legend`);
    }
    const latency = svgs.get('latency.svg') ?? '';
    assert.ok(latency.includes('One-way latency, interval mean (ms)'));
    assert.ok(latency.includes('EU→VN') && latency.includes('VN→EU'), 'direction legend');
    // One line per scenario and direction, each through all of its samples (M + n-1 × L).
    const paths = [
      ...latency.matchAll(
        /<path aria-label="([^"]*)"[^>]*aria-roledescription="line mark" d="([^"]+)"/g,
      ),
    ];
    assert.equal(paths.length, 4);
    for (const [, aria = '', d = ''] of paths) {
      assert.match(
        aria,
        /^Time since scenario start \(s\): 1; One-way latency, interval mean \(ms\): /,
      );
      assert.equal(d.match(/L/g)?.length, SAMPLES_PER_STREAM - 1, aria);
    }
    const firstPoints = paths.map(([, aria = '']) => aria.split('; ').slice(1).join('; ')).sort();
    assert.deepEqual(firstPoints, [
      'One-way latency, interval mean (ms): 156; scenario: 1 · EU -&gt; Amsterdam -&gt; VN; direction: EU→VN',
      'One-way latency, interval mean (ms): 159; scenario: 1 · EU -&gt; Amsterdam -&gt; VN; direction: VN→EU',
      'One-way latency, interval mean (ms): 181; scenario: 2 · EU -&gt; AMS -&gt; relay -&gt; HCM -&gt; VN; direction: EU→VN',
      'One-way latency, interval mean (ms): 184; scenario: 2 · EU -&gt; AMS -&gt; relay -&gt; HCM -&gt; VN; direction: VN→EU',
    ]);
    assert.ok(svgs.get('bitrate.svg')?.includes('Received bitrate (Mbit/s)'));
    assert.ok(svgs.get('jitter.svg')?.includes('Interarrival jitter (ms)'));
    const steal = svgs.get('steal.svg') ?? '';
    assert.ok(steal.includes('CPU steal (% of all CPUs)'));
    assert.ok(steal.includes('stroke="#c0392b"'), 'threshold rule');
    const bars = svgs.get('latency-by-scenario.svg') ?? '';
    assert.ok(bars.includes('One-way latency, mean over the measured window (ms)'));
    for (const value of ['161.3', '158.4', '183.1', '185.9']) {
      assert.ok(bars.includes(`>${value}</text>`), `bar label ${value}`);
    }
    assert.equal([...bars.matchAll(/aria-roledescription="bar"/g)].length, 4);
    assert.equal([...bars.matchAll(/aria-roledescription="tick"/g)].length, 3); // one null configured
  });

  it('writes one CSV row per sample', async () => {
    const csv = async (name: string): Promise<string[]> =>
      (await readFile(join(dir, 'run', name), 'utf8')).trimEnd().split('\n');
    const streams = await csv('streams.csv');
    assert.equal(streams.length - 1, result.samples.streams.length);
    assert.match(streams[0] ?? '', /^t,time,scenario,seconds,peer,direction,kind,/);
    assert.equal((await csv('nodes.csv')).length - 1, result.samples.nodes.length);
    assert.equal((await csv('cpu.csv')).length - 1, result.samples.cpu.length);
    assert.equal((await csv('links.csv')).length - 1, result.samples.links.length);
    // A null latency is an empty field; seconds count from the scenario's start.
    const header = (streams[0] ?? '').split(',');
    const rows = streams.slice(1).map((l) => {
      const cells = l.split(',');
      return Object.fromEntries(header.map((h, i) => [h, cells[i]]));
    });
    const gap = rows.find(
      (r) => r.scenario === '1' && r.seconds === '3' && r.peer === 'eu' && r.kind === 'audio',
    );
    assert.ok(gap, 'audio sample 3 of scenario 1');
    assert.equal(gap.direction, 'vn->eu');
    assert.deepEqual(
      [gap.latencyMeanMs, gap.latencyP50Ms, gap.latencyP95Ms, gap.latencyMaxMs],
      ['', '', '', ''],
    );
    assert.equal(gap.time, '2025-05-06T10:00:03.000Z');
  });

  it('quotes CSV fields', () => {
    assert.equal(csvField('a,"b"'), '"a,""b"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField(null), '');
    assert.equal(csvField(Number.NaN), '');
    assert.equal(
      toCsv(
        ['x', 'y'],
        [
          [1, 'a b'],
          [null, 'c,d'],
        ],
      ),
      'x,y\n1,a b\n,"c,d"\n',
    );
  });

  it('re-renders report.md and the charts identically from result.json', async () => {
    const run = join(dir, 'run');
    const before = await Promise.all(
      CHART_FILES.map((f) => readFile(join(run, 'charts', f), 'utf8')),
    );
    await rm(join(run, 'report.md'));
    const path = await renderReport(run);
    assert.equal(path, written.reportPath);
    assert.equal(await readFile(path, 'utf8'), md);
    const again = await Promise.all(
      CHART_FILES.map((f) => readFile(join(run, 'charts', f), 'utf8')),
    );
    assert.deepEqual(again, before);
  });

  it('rejects a directory without a valid result.json with a clear message', async () => {
    const empty = await mkdtemp(join(dir, 'empty-'));
    await assert.rejects(renderReport(empty), /No result\.json in .*empty/);
    const bad = await mkdtemp(join(dir, 'bad-'));
    await writeFile(join(bad, 'result.json'), '{"version": 1,');
    await assert.rejects(renderReport(bad), /result\.json is not valid JSON/);
    await writeFile(
      join(bad, 'result.json'),
      JSON.stringify({ ...result, version: 2, scenarios: {} }),
    );
    await assert.rejects(
      renderReport(bad),
      /is not an experiment result \(version 1\): version should be 1 \(got 2\); scenarios should be an array$/,
    );
    assert.throws(() => parseResult([]), /the top level should be an object/);
  });

  it('skips charts without data and says so', async () => {
    const sparse = fixture();
    sparse.samples.cpu = [];
    sparse.samples.streams = sparse.samples.streams.filter((s) => s.kind === 'audio');
    const plans = planCharts(sparse);
    assert.deepEqual(
      plans.filter((p) => p.spec === null).map((p) => p.id),
      ['latency', 'latency-p95', 'bitrate', 'jitter', 'steal'],
    );
    const out = join(dir, 'sparse');
    // A stale chart from an earlier rendering must go away.
    await writeResults(out, fixture());
    const { reportPath } = await writeResults(out, sparse);
    const text = await readFile(reportPath, 'utf8');
    assert.match(text, /_CPU steal over time: no chart \(no CPU samples\)\._/);
    assert.match(
      text,
      /_One-way video latency over time \(interval mean\): no chart \(no video sample has a latency measurement\)\._/,
    );
    await assert.rejects(stat(join(out, 'charts', 'steal.svg')), { code: 'ENOENT' });
    assert.ok((await stat(join(out, 'charts', 'latency-by-scenario.svg'))).size > 0);
  });
});
