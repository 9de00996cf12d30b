/**
 * Metrics as an operator's Prometheus sees them: real nodes, werift bots exchanging media,
 * then `/metrics` read by Debian's `promtool` (`apt-get install -y prometheus`; `.ci/run`
 * installs it), the node's packet counters checked against the bots' own counts, RTT and
 * jitter histograms, relay links labelled with the peer region, and the shipped Prometheus
 * config and Grafana dashboard checked against a real node's output.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Bot } from '@geosfu/client/bot';
import type { TrackKind } from '@geosfu/common/protocol';
import { BotPool } from '../helpers/bots.js';
import { metricFamilies, sampleLabels, sampleSum } from '../helpers/metrics.js';
import { type NodeProcess, type StartNodeOptions, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROMETHEUS_CONFIG = join(ROOT, 'infra/prometheus/prometheus.yml');
const DASHBOARD = join(ROOT, 'infra/grafana/dashboards/geosfu.json');
const KINDS: TrackKind[] = ['audio', 'video'];
/** How far the node's counters may be from the bots' ("within a few percent"). */
const TOLERANCE = 0.03;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs Debian's promtool; `stdin` is written to it. */
async function promtool(args: string[], stdin?: string): Promise<Run> {
  const child = spawn(process.env.PROMTOOL_BIN ?? 'promtool', args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<number | null>((resolve, reject) => {
    child.once('error', (error) =>
      reject(new Error(`cannot run promtool (${error.message}): apt-get install -y prometheus`)),
    );
    child.once('close', (code) => resolve(code));
  });
  child.stdin.on('error', () => undefined); // promtool missing: the 'error' above says so
  child.stdin.end(stdin ?? '');
  return { code: await done, stdout, stderr };
}

/**
 * `promtool check metrics`: exit 1 means the text does not parse, 3 that it parses with lint
 * problems. Lint problems of prom-client's own Node.js metrics (`nodejs_active_handles_total`
 * is a gauge with a counter's suffix) are reported, not failed; ours must have none.
 */
async function checkMetrics(text: string, what: string): Promise<void> {
  const run = await promtool(['check', 'metrics'], text);
  const problems = `${run.stdout}${run.stderr}`.trim();
  assert.ok(
    run.code === 0 || run.code === 3,
    `promtool check metrics failed on ${what} (exit ${run.code}):\n${problems}`,
  );
  if (problems) console.log(`promtool lint on ${what} (not failures):\n${problems}`);
  const ours = problems.split('\n').filter((line) => line.startsWith('sfu_'));
  assert.deepEqual(ours, [], `lint problems in the sfu_* metrics of ${what}`);
}

async function scrape(metricsUrl: string): Promise<string> {
  const res = await fetch(`${metricsUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** The shared poller, for probes that answer yes or no. */
const waitFor = (what: string, probe: () => Promise<boolean>, timeoutMs?: number) =>
  waitUntil(what, async () => ((await probe()) ? true : undefined), timeoutMs, 200);

/** Reads until two reads 600 ms apart are equal: the counters have settled. */
async function settle<T>(what: string, read: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  for (;;) {
    await sleep(600);
    const next = await read();
    if (JSON.stringify(next) === JSON.stringify(last)) return next;
    if (Date.now() > deadline) throw new Error(`${what} did not settle: ${JSON.stringify(next)}`);
    last = next;
  }
}

type Counts = Record<'in' | 'out', Record<TrackKind, number>>;

/** sfu_packets_total of one path, read from one scrape. */
function packetCounts(text: string, path: 'client' | 'relay'): Counts {
  const of = (direction: 'in' | 'out') =>
    Object.fromEntries(
      KINDS.map((kind) => [kind, sampleSum(text, 'sfu_packets_total', { direction, kind, path })]),
    ) as Record<TrackKind, number>;
  return { in: of('in'), out: of('out') };
}

const minus = (a: Counts, b: Counts): Counts => ({
  in: { audio: a.in.audio - b.in.audio, video: a.in.video - b.in.video },
  out: { audio: a.out.audio - b.out.audio, video: a.out.video - b.out.video },
});

function assertClose(actual: number, expected: number, what: string): void {
  assert.ok(expected > 0, `${what}: nothing to compare (expected ${expected})`);
  const off = Math.abs(actual - expected) / expected;
  assert.ok(
    off <= TOLERANCE,
    `${what}: node counted ${actual}, bots ${expected} (${(off * 100).toFixed(1)}% apart)`,
  );
}

/** What the subscribers received from `identity`, summed, by kind. */
function received(subscribers: Bot[], identity: string): Record<TrackKind, number> {
  const sum = (kind: TrackKind) =>
    subscribers.reduce(
      (n, s) =>
        n +
        (s.stats().received.find((r) => r.participant === identity && r.kind === kind)?.packets ??
          0),
      0,
    );
  return { audio: sum('audio'), video: sum('video') };
}

function sent(publisher: Bot): Record<TrackKind, number> {
  const of = (kind: TrackKind) => publisher.stats().sent.find((s) => s.kind === kind)?.packets ?? 0;
  return { audio: of('audio'), video: of('video') };
}

/**
 * Packets the publisher sent again on the node's NACKs (its werift senders' outbound-rtp
 * stats). The node counts each arrival, so under load (late packets NACKed, then arriving
 * twice) its "in" exceeds the unique packets sent, and it forwards those copies too.
 */
async function resent(publisher: Bot): Promise<Record<TrackKind, number>> {
  const out = { audio: 0, video: 0 };
  const report = await publisher.peerConnections.publisher?.getStats();
  for (const stat of (report?.values() ?? []) as Iterable<Record<string, unknown>>) {
    if (stat.type !== 'outbound-rtp') continue;
    const kind: TrackKind = stat.kind === 'audio' ? 'audio' : 'video';
    out[kind] +=
      typeof stat.retransmittedPacketsSent === 'number' ? stat.retransmittedPacketsSent : 0;
  }
  return out;
}

/** `actual` within [low, high], each bound widened by the tolerance. */
function assertBetween(actual: number, low: number, high: number, what: string): void {
  assert.ok(low > 0, `${what}: nothing to compare (expected at least ${low})`);
  assert.ok(
    actual >= low * (1 - TOLERANCE) && actual <= high * (1 + TOLERANCE),
    `${what}: node counted ${actual}, expected ${low}..${high}`,
  );
}

/** Stops the publisher's media (both tracks unpublished), so every count can settle. */
async function stopPublishing(publisher: Bot): Promise<void> {
  for (const kind of KINDS) await publisher.unpublish(kind);
}

test('promtool accepts the Prometheus config', async () => {
  const run = await promtool(['check', 'config', PROMETHEUS_CONFIG]);
  assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
});

describe('metrics of one node, on its own port', () => {
  let node: NodeProcess;
  const bots = new BotPool(() => node.url);

  before(async () => {
    node = await startNode({ args: ['--metrics-port', '0'] });
  });
  after(async () => {
    await bots.closeAll();
    await node?.stop();
  });

  test('SFU_METRICS_PORT serves /metrics and nothing else; the HTTP port no longer does', async () => {
    assert.notEqual(node.metricsUrl, node.url);
    const res = await fetch(`${node.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await res.text(), /^sfu_node_info\{.*region="local".*\} 1$/m);
    assert.equal((await fetch(`${node.url}/metrics`)).status, 404);
    assert.equal((await fetch(`${node.metricsUrl}/healthz`)).status, 404);
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200);
  });

  test('packet counters agree with the bots, stats replies carry the streams, promtool parses /metrics', async () => {
    const before = packetCounts(await scrape(node.metricsUrl), 'client');
    const publisher = await bots.connect({
      room: 'count',
      identity: 'pub',
      publish: { video: true, audio: true },
      subscribe: false,
    });
    const subscribers = await Promise.all(
      ['s1', 's2'].map((identity) => bots.connect({ room: 'count', identity })),
    );
    await Promise.all(
      subscribers.flatMap((s) => [
        s.waitForPackets('pub', 'video', 400, 20_000),
        s.waitForPackets('pub', 'audio', 150, 20_000),
      ]),
    );

    // A participant asks the node for its own stats: the node's view of its streams.
    const mine = await publisher.signal.request({ type: 'stats' }, 'stats');
    for (const kind of KINDS) {
      const stream = mine.streams.find((s) => s.direction === 'inbound' && s.kind === kind);
      assert.ok(stream && stream.packets > 0, `publisher ${kind}: ${JSON.stringify(mine)}`);
      assert.ok(stream.bytes > 0);
    }
    const theirs = await subscribers[0]?.signal.request({ type: 'stats' }, 'stats');
    for (const kind of KINDS) {
      const stream = theirs?.streams.find((s) => s.direction === 'outbound' && s.kind === kind);
      assert.ok(stream && stream.packets > 0, `subscriber ${kind}: ${JSON.stringify(theirs)}`);
    }

    // RTT (subscribers' receiver reports) and jitter are sampled every 5 s.
    await waitFor('RTT and jitter samples', async () => {
      const text = await scrape(node.metricsUrl);
      return (
        sampleSum(text, 'sfu_rtt_seconds_count', { path: 'client' }) > 0 &&
        sampleSum(text, 'sfu_jitter_seconds_count', { path: 'client', kind: 'video' }) > 0 &&
        sampleSum(text, 'sfu_jitter_seconds_count', { path: 'client', kind: 'audio' }) > 0
      );
    });

    await stopPublishing(publisher);
    const { counts, got } = await settle('node and subscriber counts', async () => ({
      counts: minus(packetCounts(await scrape(node.metricsUrl), 'client'), before),
      got: received(subscribers, 'pub'),
    }));
    const put = sent(publisher);
    const again = await resent(publisher);
    console.log(
      `one node: resent ${JSON.stringify(again)}, sent ${JSON.stringify(put)}, node in ${JSON.stringify(counts.in)}, node out ${JSON.stringify(counts.out)}, subscribers got ${JSON.stringify(got)}`,
    );
    for (const kind of KINDS) {
      assertBetween(counts.in[kind], put[kind], put[kind] + again[kind], `${kind} in`);
      // Subscribers count unique packets; the node forwards every copy it received.
      const copies = subscribers.length * again[kind];
      assertBetween(counts.out[kind], got[kind], got[kind] + copies, `${kind} out`);
    }

    const text = await scrape(node.metricsUrl);
    assert.ok(sampleSum(text, 'sfu_join_duration_seconds_count') >= 2);
    await checkMetrics(text, 'one node');
  });

  test('packets lost toward the node are counted', async () => {
    const lost = async () =>
      sampleSum(await scrape(node.metricsUrl), 'sfu_packets_lost_total', {
        kind: 'audio',
        path: 'client',
      });
    const before = await lost();
    // Audio is not retransmitted: what the publisher's link drops stays lost.
    const publisher = await bots.connect({
      room: 'lossy',
      identity: 'lossy',
      publish: { video: false, audio: true },
      subscribe: false,
      lossPercent: 10,
    });
    let now = before;
    await waitFor(
      'lost audio packets in sfu_packets_lost_total',
      async () => {
        now = await lost();
        return now - before >= 5;
      },
      20_000,
    );
    const audioSent = sent(publisher).audio;
    console.log(`10% loss: ${now - before} of ${audioSent} audio packets counted lost so far`);
    assert.ok(now - before <= audioSent * 0.3, 'no more lost than a 10% loss could drop');
  });
});

describe('metrics of two nodes with a relay link', () => {
  let redis: RedisServer;
  const nodes = new Map<string, NodeProcess>();
  const bots = new BotPool();
  const node = (region: string): NodeProcess => {
    const n = nodes.get(region);
    assert.ok(n, region);
    return n;
  };

  before(async () => {
    redis = await startRedis();
    const start = (options: StartNodeOptions) =>
      startNode({
        ...options,
        env: {
          REDIS_URL: redis.url,
          SFU_REGISTRY_TTL_MS: '3000',
          SFU_REGISTRY_HEARTBEAT_MS: '750',
          SFU_DEFAULT_REGION: 'ams',
        },
      });
    for (const region of ['ams', 'hcm'])
      nodes.set(region, await start({ region, nodeId: `node-${region}` }));
  });
  after(async () => {
    await bots.closeAll();
    await Promise.allSettled([...nodes.values()].map((n) => n.stop('SIGKILL')));
    await redis?.stop();
  });

  test('relay metrics carry the peer region, and counters agree across the link', async () => {
    const ams = node('ams');
    const hcm = node('hcm');
    const beforeAms = await scrape(ams.metricsUrl);
    const beforeHcm = await scrape(hcm.metricsUrl);
    const publisher = await bots.connect({
      url: ams.url,
      region: 'ams',
      room: 'span',
      identity: 'eu',
      publish: { video: true, audio: true },
      subscribe: false,
    });
    const subscribers = [
      await bots.connect({ url: ams.url, region: 'hcm', room: 'span', identity: 'vn1' }),
      await bots.connect({ url: ams.url, region: 'hcm', room: 'span', identity: 'vn2' }),
    ];
    for (const s of subscribers) assert.equal(s.route?.region, 'hcm');
    await Promise.all(
      subscribers.flatMap((s) => [
        s.waitForPackets('eu', 'video', 400, 20_000),
        s.waitForPackets('eu', 'audio', 150, 20_000),
      ]),
    );

    // The relay link gauges converge as the room monitors reconcile: wait for one link each
    // way, then read everything from those same scrapes.
    let amsText = '';
    let hcmText = '';
    await waitFor('one relay link from ams to hcm', async () => {
      amsText = await scrape(ams.metricsUrl);
      hcmText = await scrape(hcm.metricsUrl);
      return (
        sampleSum(amsText, 'sfu_relay_links', { direction: 'out' }) === 1 &&
        sampleSum(hcmText, 'sfu_relay_links', { direction: 'in' }) === 1 &&
        sampleSum(amsText, 'sfu_relay_setup_duration_seconds_count') >= 1
      );
    });
    assert.deepEqual(sampleLabels(amsText, 'sfu_relay_links'), [
      { peer_region: 'hcm', direction: 'out' },
    ]);
    assert.equal(sampleSum(amsText, 'sfu_relay_links', { peer_region: 'hcm' }), 1);
    assert.deepEqual(sampleLabels(hcmText, 'sfu_relay_links'), [
      { peer_region: 'ams', direction: 'in' },
    ]);
    assert.equal(sampleSum(hcmText, 'sfu_relay_links', { peer_region: 'ams' }), 1);
    assert.ok(sampleSum(amsText, 'sfu_relay_setup_duration_seconds_count') >= 1);

    await waitFor('relay RTT and jitter samples with the peer region', async () => {
      const a = await scrape(ams.metricsUrl);
      const h = await scrape(hcm.metricsUrl);
      return (
        sampleSum(a, 'sfu_rtt_seconds_count', { path: 'relay', peer_region: 'hcm' }) > 0 &&
        sampleSum(h, 'sfu_jitter_seconds_count', { path: 'relay', peer_region: 'ams' }) > 0
      );
    });

    await stopPublishing(publisher);
    const settled = await settle('counts on both nodes', async () => {
      const a = await scrape(ams.metricsUrl);
      const h = await scrape(hcm.metricsUrl);
      return {
        amsClient: minus(packetCounts(a, 'client'), packetCounts(beforeAms, 'client')),
        amsRelay: minus(packetCounts(a, 'relay'), packetCounts(beforeAms, 'relay')),
        hcmClient: minus(packetCounts(h, 'client'), packetCounts(beforeHcm, 'client')),
        hcmRelay: minus(packetCounts(h, 'relay'), packetCounts(beforeHcm, 'relay')),
        got: received(subscribers, 'eu'),
      };
    });
    const put = sent(publisher);
    const again = await resent(publisher);
    console.log(
      `two nodes: resent ${JSON.stringify(again)}, sent ${JSON.stringify(put)}, ams in ${JSON.stringify(settled.amsClient.in)}, ams relay out ${JSON.stringify(settled.amsRelay.out)}, hcm relay in ${JSON.stringify(settled.hcmRelay.in)}, hcm out ${JSON.stringify(settled.hcmClient.out)}, subscribers got ${JSON.stringify(settled.got)}`,
    );
    for (const kind of KINDS) {
      assertBetween(settled.amsClient.in[kind], put[kind], put[kind] + again[kind], `${kind} in`);
      // The link opened when the first subscriber joined hcm, after the publisher started.
      const relayed = settled.amsRelay.out[kind];
      assert.ok(relayed > 0 && relayed <= put[kind] + again[kind], `${kind} relayed ${relayed}`);
      assertClose(
        settled.hcmRelay.in[kind],
        settled.amsRelay.out[kind],
        `${kind} relayed in on hcm`,
      );
      const copies = subscribers.length * again[kind];
      assertBetween(
        settled.hcmClient.out[kind],
        settled.got[kind],
        settled.got[kind] + copies,
        `${kind} out on hcm`,
      );
    }
    await checkMetrics(await scrape(ams.metricsUrl), 'ams');
    await checkMetrics(await scrape(hcm.metricsUrl), 'hcm');
  });

  test('every metric the Grafana dashboard queries exists in a real node, in valid PromQL', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as unknown;
    const exprs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) for (const v of value) walk(v);
      else if (value && typeof value === 'object') {
        for (const [key, v] of Object.entries(value)) {
          if ((key === 'expr' || key === 'definition') && typeof v === 'string') exprs.push(v);
          else walk(v);
        }
      }
    };
    walk(dashboard);
    assert.ok(exprs.length >= 20, `${exprs.length} queries`);
    const wanted = new Set<string>();
    for (const expr of exprs) {
      for (const [name] of expr.matchAll(/\b(?:sfu|nodejs|process)_[a-zA-Z0-9_]+/g))
        wanted.add(name.replace(/_(bucket|sum|count)$/, ''));
    }
    // After the test above: media flowed through a relay, so the histograms have series.
    const texts = [await scrape(node('ams').metricsUrl), await scrape(node('hcm').metricsUrl)];
    const families = new Map<string, string>();
    for (const text of texts) for (const [k, v] of metricFamilies(text)) families.set(k, v);
    const missing = [...wanted].filter((name) => !families.has(name));
    assert.deepEqual(missing, [], 'metrics the dashboard queries but no node exports');
    const withoutSamples = [...wanted].filter((name) => {
      const sample = families.get(name) === 'histogram' ? `${name}_count` : name;
      return !texts.some((t) => sampleLabels(t, sample).length > 0);
    });
    console.log(
      `dashboard: ${exprs.length} queries over ${wanted.size} metrics; without samples in this run: ${withoutSamples.join(', ') || 'none'}`,
    );
    for (const name of ['sfu_rtt_seconds', 'sfu_jitter_seconds', 'sfu_loss_ratio'])
      assert.ok(!withoutSamples.includes(name), `${name} has samples`);
    // The simulcast row must not read "no data" on a node without simulcast traffic: these
    // series exist from the start, at 0.
    const simulcast = [
      'sfu_layer_switches_total',
      'sfu_simulcast_layer_packets_total',
      'sfu_simulcast_paused_layers',
      'sfu_subscriber_estimate_bps',
      'sfu_subscriber_probes_total',
      'sfu_subscriber_paced_packets_total',
      'sfu_relay_layers_carried',
      'sfu_relay_layer_packets_total',
      'sfu_publisher_feedback_packets_total',
    ];
    for (const name of simulcast) {
      assert.ok(wanted.has(name), `the dashboard queries ${name}`);
      assert.ok(!withoutSamples.includes(name), `${name} has samples`);
    }

    // The queries parse as PromQL (Grafana's variables replaced by what they expand to).
    const dir = mkdtempSync(join(tmpdir(), 'geosfu-dashboard-'));
    try {
      const rules = exprs
        .filter((e) => !e.startsWith('label_values('))
        .map((e, i) => {
          const expr = e
            .replaceAll('$__rate_interval', '1m')
            .replaceAll('$region', '.*')
            .replace(/\$\{?\w+\}?/g, 'x');
          return `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(expr)}`;
        });
      const file = join(dir, 'rules.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const run = await promtool(['check', 'rules', file]);
      assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
