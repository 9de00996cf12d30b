/**
 * A short run of the latency experiment in the WAN lab (about 12 s per scenario): the real
 * nodes, Redis and bots in network namespaces behind the emulated links of the `clean`
 * profile. Asserts that the measured one-way latency is the sum of the configured link delays
 * plus a small processing budget, that scenarios 1 and 4 go through a relay and 2 and 3 do
 * not, that video arrives at the rate it is sent, and that the control plane works with a
 * 160-190 ms Redis round trip from Singapore and Ho Chi Minh City.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeResults } from '../../infra/lab/src/experiment/report.js';
import { runExperiment } from '../../infra/lab/src/experiment/runner.js';
import { SCENARIOS } from '../../infra/lab/src/experiment/scenarios.js';
import { LabTarget } from '../../infra/lab/src/experiment/targets.js';
import type { ExperimentResult, ScenarioResult } from '../../infra/lab/src/experiment/types.js';

const isRoot = process.getuid?.() === 0;
const VIDEO_BPS = 1_500_000;
/** Packetisation, the SFU's forwarding, relay hops, timers and FIFO-kept jitter, ms. */
const PROCESSING_BUDGET_MS = 20;

describe('latency experiment in the WAN lab', { skip: isRoot ? false : 'needs root' }, () => {
  let target: LabTarget | undefined;
  let result: ExperimentResult;
  const dir = mkdtempSync(join(tmpdir(), 'geosfu-experiment-'));

  before(async () => {
    target = await LabTarget.start({ profile: 'clean' });
    result = await runExperiment(target, {
      scenarios: SCENARIOS,
      durationMs: 12_000,
      sampleIntervalMs: 2_000,
      warmupMs: 4_000,
      videoBitrate: VIDEO_BPS,
      stealThresholdPercent: 5,
      // werift still loses a handshake now and then on lossy paths (docs/ARCHITECTURE.md):
      // a failed scenario runs once more, and its failed attempt is printed below.
      retries: 1,
      runId: 'labtest',
      profile: target.description,
      log: (line) => process.stdout.write(`# ${line}\n`),
    });
    await writeResults(dir, result);
  });
  after(async () => {
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const scenario = (id: number): ScenarioResult => {
    const s = result.scenarios.find((x) => x.id === id);
    assert.ok(s, `scenario ${id} ran`);
    return s;
  };

  test('every join and every relay set-up succeeds', () => {
    for (const s of result.scenarios) {
      for (const e of s.retriedErrors ?? []) {
        process.stdout.write(`# scenario ${s.id} was run again after: ${e}\n`);
      }
      assert.deepEqual(s.errors, [], `scenario ${s.id} errors`);
      assert.equal(s.joins.length, 2);
      for (const j of s.joins) {
        assert.ok(j.ok, `scenario ${s.id}: ${j.peer} joined (${j.error ?? ''})`);
        assert.ok(j.joinMs !== null && j.firstMediaMs !== null, JSON.stringify(j));
        process.stdout.write(
          `# scenario ${s.id}: ${j.peer} joined ${j.node} in ${j.joinMs} ms, first video after ${j.firstMediaMs} ms\n`,
        );
      }
      assert.equal(s.relaySetups.failures, 0, `scenario ${s.id} relay failures`);
    }
  });

  test('scenarios 1 and 4 go through a relay link, 2 and 3 do not', () => {
    for (const s of result.scenarios) {
      const def = SCENARIOS.find((d) => d.id === s.id);
      assert.deepEqual(s.nodes, def?.expected, `scenario ${s.id} nodes`);
      if (def?.relayed) {
        // One link each way, each set up once, and media on them (node counters).
        assert.equal(s.relaySetups.count, 2, `scenario ${s.id} relay set-ups`);
        assert.ok(s.relayPackets > 1_000, `scenario ${s.id} relayed ${s.relayPackets} packets`);
        const links = result.samples.nodes.filter((n) => n.scenario === s.id && n.relayLinks > 0);
        assert.ok(links.length > 0, `scenario ${s.id}: nodes reported relay links`);
      } else {
        assert.equal(s.relaySetups.count, 0, `scenario ${s.id} relay set-ups`);
        assert.equal(s.relayPackets, 0, `scenario ${s.id} relay packets`);
      }
    }
    // GeoIP routing picked Amsterdam for the EU peer and HCMC for the VN peer by itself.
    assert.deepEqual(scenario(4).nodes, { eu: 'ams', vn: 'hcm' });
  });

  test('one-way latency is the sum of the configured link delays plus a small budget', () => {
    for (const s of result.scenarios) {
      for (const st of s.streams.filter((x) => x.kind === 'video')) {
        const configured = st.configuredDelayMs;
        const p50 = st.latencyMs.p50;
        assert.ok(configured !== null && p50 !== null, `scenario ${s.id} ${st.peer}`);
        process.stdout.write(
          `# scenario ${s.id} to ${st.peer}: configured ${configured} ms, p50 ${p50} ms, mean ${st.latencyMs.mean} ms, p95 ${st.latencyMs.p95} ms\n`,
        );
        assert.ok(
          p50 >= configured - 2 && p50 <= configured + PROCESSING_BUDGET_MS,
          `scenario ${s.id} to ${st.peer}: p50 ${p50} ms vs configured ${configured} ms`,
        );
      }
    }
    // The relay through Singapore (88 + 15 + 4) beats nothing here but must not be slower
    // than its links: scenario 1 is configured at 107 ms, scenario 2 at 109 ms.
    const s1 = scenario(1).streams.find((x) => x.peer === 'vn' && x.kind === 'video');
    assert.equal(s1?.configuredDelayMs, 107);
  });

  test('video arrives at about the rate it is sent on clean links', () => {
    for (const s of result.scenarios) {
      for (const st of s.streams.filter((x) => x.kind === 'video')) {
        const kbps = st.avgBitrateKbps;
        assert.ok(
          kbps > (0.85 * VIDEO_BPS) / 1000 && kbps < (1.3 * VIDEO_BPS) / 1000,
          `scenario ${s.id} to ${st.peer}: ${kbps} kbit/s`,
        );
        assert.ok(st.lossPercent < 3, `scenario ${s.id} to ${st.peer}: loss ${st.lossPercent}%`);
      }
    }
  });

  test('Singapore and HCMC reach Redis (next to Amsterdam) in 160-190 ms', () => {
    const rtt = (node: 'ams' | 'sin' | 'hcm') => {
      const xs = result.samples.nodes
        .filter((n) => n.node === node && n.redisRttMs !== null)
        .map((n) => n.redisRttMs as number)
        .sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)];
    };
    const sin = rtt('sin');
    const hcm = rtt('hcm');
    const ams = rtt('ams');
    process.stdout.write(
      `# Redis round trip (median of samples): ams ${ams}, sin ${sin}, hcm ${hcm} ms\n`,
    );
    // Configured 160 and 190 ms; the heartbeat write adds Redis and event-loop time.
    assert.ok(sin !== undefined && sin >= 158 && sin <= 185, `sin ${sin} ms`);
    assert.ok(hcm !== undefined && hcm >= 188 && hcm <= 215, `hcm ${hcm} ms`);
    assert.ok(ams !== undefined && ams < 15, `ams ${ams} ms`);
  });

  test('the report has the table, the joins and the charts', () => {
    const report = readFileSync(join(dir, 'report.md'), 'utf8');
    for (const s of result.scenarios)
      assert.ok(report.includes(s.title), `report lists ${s.title}`);
    assert.ok(existsSync(join(dir, 'result.json')));
    assert.ok(existsSync(join(dir, 'streams.csv')));
    assert.match(report, /charts\/[a-z-]+\.svg/);
  });
});
