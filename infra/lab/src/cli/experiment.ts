#!/usr/bin/env node
/**
 * sfu-experiment: the Amsterdam / Singapore / Ho Chi Minh City latency experiment.
 *
 *   sfu-experiment run --scenario all --duration 60m [--profile clean]      (the lab)
 *   sfu-experiment run --target real --nodes ams=URL,sin=URL,hcm=URL --peer eu ...
 *   sfu-experiment report results/<timestamp>                               (re-render)
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDurationSeconds } from '@geosfu/common';
import { progressPrinter } from '../experiment/progress.js';
import { renderReport, writeResults } from '../experiment/report.js';
import { runExperiment } from '../experiment/runner.js';
import { parseScenarioList } from '../experiment/scenarios.js';
import {
  type ExperimentTarget,
  LabTarget,
  NODE_REGIONS,
  RealTarget,
} from '../experiment/targets.js';
import type { NodeRegion, Peer } from '../experiment/types.js';

const USAGE = `usage:
  sfu-experiment run [options]        run the scenarios and write results/<timestamp>/
  sfu-experiment report <dir>         re-render <dir>/report.md and charts from result.json

run options:
  --scenario all|1,2,3,4    scenarios to run, one after the other (default all)
  --duration 60m            measured time per scenario (s, m, h suffixes; default 60m)
  --interval 5s             sampling interval (default 5s)
  --warmup 10s              left out of the summaries after the joins (default 10s)
  --video-bitrate 1500000   synthetic video each peer publishes, bit/s (default 1.5 Mbit/s)
  --steal-threshold 5       steal above this % of an interval marks it (default 5)
  --retries 1               run a failed scenario again, up to this many times (default 1);
                            the report lists the failed attempts
  --out DIR                 results directory (default results/<timestamp>)
  --target lab|real         (default lab)
 lab:
  --profile clean           link profile set from infra/lab/profiles/links.json
  --profiles FILE           another link profile file (same format)
  --seed 1                  random seed of the link emulator
 real (run on a machine in each place, with the same --run-id and --start-at):
  --nodes ams=URL,sin=URL,hcm=URL   node base URLs
  --route-url URL           where bots ask /v1/route in scenario 4 (default: the ams node)
  --metrics ams=URL,...     /metrics URLs when nodes use SFU_METRICS_PORT
  --peer eu|vn|both         the peer(s) this machine runs (default both)
  --run-id ID               shared by both machines (rooms and identities derive from it)
  --start-at ISO-TIME       both machines start scenario 1 then; each next one a slot later
  --rtc-host-addresses A,B  local addresses the bots use for ICE (default: all)
  tokens: SFU_API_KEY and SFU_API_SECRET in the environment (else the nodes' dev endpoint)`;

function fail(message: string): never {
  process.stderr.write(`sfu-experiment: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function ms(text: string, flag: string): number {
  try {
    return parseDurationSeconds(text) * 1000;
  } catch {
    fail(`${flag} "${text}" is not a duration (e.g. 20s, 5m, 1h)`);
  }
}

function regionMap(text: string | undefined, flag: string): Partial<Record<NodeRegion, string>> {
  const out: Partial<Record<NodeRegion, string>> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    const [region, ...rest] = part.split('=');
    const url = rest.join('=');
    if (!region || !NODE_REGIONS.includes(region as NodeRegion) || !/^https?:\/\//.test(url)) {
      fail(
        `${flag} takes region=http(s)://... pairs for ${NODE_REGIONS.join(', ')}, not "${part}"`,
      );
    }
    out[region as NodeRegion] = url;
  }
  return out;
}

async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', default: 'all' },
      duration: { type: 'string', default: '60m' },
      interval: { type: 'string', default: '5s' },
      warmup: { type: 'string', default: '10s' },
      'video-bitrate': { type: 'string', default: '1500000' },
      'steal-threshold': { type: 'string', default: '5' },
      retries: { type: 'string', default: '1' },
      out: { type: 'string' },
      target: { type: 'string', default: 'lab' },
      profile: { type: 'string', default: 'clean' },
      profiles: { type: 'string' },
      seed: { type: 'string', default: '1' },
      nodes: { type: 'string' },
      'route-url': { type: 'string' },
      metrics: { type: 'string' },
      peer: { type: 'string', default: 'both' },
      'run-id': { type: 'string' },
      'start-at': { type: 'string' },
      'rtc-host-addresses': { type: 'string' },
    },
    strict: true,
  });
  let scenarios: ReturnType<typeof parseScenarioList>;
  try {
    scenarios = parseScenarioList(values.scenario);
  } catch (error) {
    fail((error as Error).message);
  }
  const durationMs = ms(values.duration, '--duration');
  const sampleIntervalMs = ms(values.interval, '--interval');
  const warmupMs = ms(values.warmup, '--warmup');
  if (sampleIntervalMs < 1000) fail('--interval must be at least 1s');
  if (durationMs < 2 * sampleIntervalMs + warmupMs) {
    fail('--duration must cover the warm-up and at least two sampling intervals');
  }
  const videoBitrate = Number(values['video-bitrate']);
  if (!Number.isInteger(videoBitrate) || videoBitrate < 50_000 || videoBitrate > 20_000_000) {
    fail('--video-bitrate must be an integer between 50000 and 20000000 bit/s');
  }
  const stealThresholdPercent = Number(values['steal-threshold']);
  if (!(stealThresholdPercent > 0 && stealThresholdPercent < 100)) {
    fail('--steal-threshold must be a percentage between 0 and 100');
  }
  const retries = Number(values.retries);
  if (!Number.isInteger(retries) || retries < 0 || retries > 5) {
    fail('--retries must be an integer from 0 to 5');
  }
  const stamp = new Date()
    .toISOString()
    .replace(/[:.]/g, '-')
    .replace(/-\d{3}Z$/, 'Z');
  const out = values.out ?? join('results', stamp);
  const runId = values['run-id'] ?? stamp.replace(/[^0-9A-Za-z]/g, '').slice(-10);
  if (!/^[A-Za-z0-9-]{1,40}$/.test(runId)) fail('--run-id takes 1-40 letters, digits or dashes');
  let startAt: number | undefined;
  if (values['start-at']) {
    startAt = Date.parse(values['start-at']);
    if (Number.isNaN(startAt)) fail(`--start-at "${values['start-at']}" is not an ISO time`);
  }

  const log = (line: string) => process.stderr.write(`${line}\n`);
  let target: ExperimentTarget;
  let profile: string;
  if (values.target === 'lab') {
    if (process.getuid?.() !== 0) fail('the lab creates network namespaces: run it as root');
    log(`building the lab (profile "${values.profile}")...`);
    target = await LabTarget.start({
      profile: values.profile,
      ...(values.profiles ? { profilesFile: values.profiles } : {}),
      seed: Number(values.seed),
      log,
      // The nodes' and Redis's own logs (SFU_LOG_LEVEL, default warn) go with the results.
      logDir: join(out, 'logs'),
    });
    profile = target.description;
  } else if (values.target === 'real') {
    const nodes = regionMap(values.nodes, '--nodes');
    const missing = NODE_REGIONS.filter((r) => !nodes[r]);
    if (missing.length > 0) fail(`--nodes lacks ${missing.join(', ')}`);
    const peers: Peer[] =
      values.peer === 'both'
        ? ['eu', 'vn']
        : values.peer === 'eu' || values.peer === 'vn'
          ? [values.peer]
          : fail('--peer takes eu, vn or both');
    if (peers.length === 1 && (!values['run-id'] || !values['start-at'])) {
      fail('with one peer per machine, give both machines the same --run-id and --start-at');
    }
    target = new RealTarget({
      nodes: nodes as Record<NodeRegion, string>,
      routeUrl: values['route-url'],
      metrics: regionMap(values.metrics, '--metrics'),
      peers,
      hostAddresses: values['rtc-host-addresses']?.split(',').map((a) => a.trim()),
      apiKey: process.env.SFU_API_KEY,
      apiSecret: process.env.SFU_API_SECRET,
    });
    profile = target.description;
  } else {
    fail(`--target takes lab or real, not "${values.target}"`);
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`\n${signal}: tearing down...`);
    void target.close().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const progress = progressPrinter();
  try {
    const result = await runExperiment(target, {
      scenarios,
      durationMs,
      sampleIntervalMs,
      warmupMs,
      videoBitrate,
      stealThresholdPercent,
      retries,
      runId,
      startAt,
      profile,
      onProgress: (p) => progress.update(p),
      log,
    });
    const { reportPath } = await writeResults(out, result);
    log(`\nreport: ${reportPath}`);
    const failed = result.scenarios.filter((s) => s.errors.length > 0);
    for (const s of failed) log(`scenario ${s.id} errors:\n  ${s.errors.join('\n  ')}`);
    process.exitCode = failed.length > 0 ? 1 : 0;
  } finally {
    await target.close();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // `npm run experiment -- --scenario all ...`: options alone mean `run`.
  const [command, ...rest] =
    argv[0]?.startsWith('--') && argv[0] !== '--help' ? ['run', ...argv] : argv;
  if (command === 'run') await run(rest);
  else if (command === 'report') {
    const dir = rest[0];
    if (!dir) fail('report needs the results directory');
    process.stderr.write(`report: ${await renderReport(dir)}\n`);
  } else if (command === '--help' || command === '-h' || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
  } else fail(`unknown command "${command}"`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `sfu-experiment: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
