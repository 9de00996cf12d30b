/**
 * `sfu-experiment --target real`: the experiment against a deployment given by node URLs,
 * here three node processes and a redis-server on loopback standing in for Amsterdam,
 * Singapore and Ho Chi Minh City. The same runner as in the lab, without namespaces: joins
 * where the scenario says, relays in scenario 1 and not in 2, media measured both ways, and
 * a report written.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ExperimentResult } from '../../infra/lab/src/experiment/types.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

const CLI = fileURLToPath(new URL('../../infra/lab/src/cli/experiment.ts', import.meta.url));

describe('sfu-experiment against node URLs (--target real)', () => {
  let redis: RedisServer;
  const nodes: NodeProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'geosfu-real-'));
  let exitCode: number | null = null;
  let stderr = '';

  before(async () => {
    redis = await startRedis();
    for (const region of ['ams', 'sin', 'hcm']) {
      nodes.push(await startNode({ region, nodeId: region, env: { REDIS_URL: redis.url } }));
    }
    const urls = nodes.map((n) => `${n.region}=${n.url}`).join(',');
    const child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        CLI,
        '--target',
        'real',
        '--nodes',
        urls,
        '--rtc-host-addresses',
        '127.0.0.1',
        '--scenario',
        '1,2',
        '--duration',
        '8s',
        '--interval',
        '2s',
        '--warmup',
        '2s',
        '--out',
        dir,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('runs both scenarios and writes a report', () => {
    assert.equal(exitCode, 0, stderr.slice(-3000));
    // Progress went to stderr while it ran.
    assert.match(stderr, /scenario 1 \(1\/2\) measuring/);
    assert.ok(existsSync(join(dir, 'report.md')));
    assert.ok(existsSync(join(dir, 'charts', 'latency.svg')));
  });

  test('scenario 1 relays between sin and hcm, scenario 2 stays on hcm, media flows both ways', () => {
    const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as ExperimentResult;
    assert.equal(result.target, 'real');
    const [s1, s2] = result.scenarios;
    assert.deepEqual(s1?.nodes, { eu: 'sin', vn: 'hcm' });
    assert.equal(s1?.relaySetups.count, 2);
    assert.ok((s1?.relayPackets ?? 0) > 500, `relayed ${s1?.relayPackets}`);
    assert.deepEqual(s2?.nodes, { eu: 'hcm', vn: 'hcm' });
    assert.equal(s2?.relaySetups.count, 0);
    for (const s of [s1, s2]) {
      assert.deepEqual(s?.errors, []);
      for (const st of s?.streams.filter((x) => x.kind === 'video') ?? []) {
        assert.ok(st.packets > 300, `scenario ${s?.id} to ${st.peer}: ${st.packets} packets`);
        assert.ok(st.avgBitrateKbps > 1_000, `scenario ${s?.id}: ${st.avgBitrateKbps} kbit/s`);
        // Loopback: no configured links, so no configured delay; latency is small.
        assert.equal(st.configuredDelayMs, null);
        assert.ok((st.latencyMs.p50 ?? 1e9) < 50, `p50 ${st.latencyMs.p50} ms`);
      }
    }
  });
});
