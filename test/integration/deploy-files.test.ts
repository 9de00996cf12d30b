/**
 * The deployment files pass their validators, without a Docker engine: the region's compose
 * file through a compose implementation's `config` (Debian's docker-compose), the systemd
 * units through `systemd-analyze verify`, the compose Prometheus config through `promtool`.
 *
 * Needs docker-compose, systemd and prometheus (promtool); .ci/run installs them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE = join(ROOT, 'infra/compose/docker-compose.yml');

/** What infra/compose/env.example asks for, filled in. */
const ENV = {
  SFU_REGION: 'ams',
  SFU_DOMAIN: 'ams.example.com',
  TURN_DOMAIN: 'turn.ams.example.com',
  SFU_PUBLIC_IP: '203.0.113.10',
  SFU_API_KEY: 'key',
  SFU_API_SECRET: 'x'.repeat(32),
  SFU_CLUSTER_SECRET: 'y'.repeat(32),
  TURN_SECRET: 'z'.repeat(32),
  GRAFANA_ADMIN_PASSWORD: 'admin-password',
};

function compose(env: Record<string, string>) {
  return spawnSync('docker-compose', ['-f', COMPOSE, 'config'], {
    encoding: 'utf8',
    // Only what the test gives: no stray variable from this shell fills a required value.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
}

describe('deployment files', () => {
  test('the compose file is valid and defines the region', () => {
    const result = compose(ENV);
    assert.equal(result.status, 0, result.stderr);
    for (const service of ['node', 'coturn', 'caddy', 'redis', 'prometheus', 'grafana'])
      assert.match(result.stdout, new RegExp(`^  ${service}:$`, 'm'), `service ${service}`);
    // The node gets the region's TURN URLs, all three transports, and the secret from .env.
    assert.match(
      result.stdout,
      /SFU_TURN_URLS: turn:turn\.ams\.example\.com:3478\?transport=udp,turn:turn\.ams\.example\.com:3478\?transport=tcp,turns:turn\.ams\.example\.com:5349\?transport=tcp/,
    );
    assert.match(result.stdout, /SFU_TURN_SECRET: z{32}/);
    assert.match(result.stdout, /--static-auth-secret=z{32}/);
  });

  test('the compose file refuses to run without its secrets', () => {
    const { TURN_SECRET: _omitted, ...rest } = ENV;
    const result = compose(rest);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /set TURN_SECRET in \.env/);
  });

  test('the systemd units pass systemd-analyze verify', () => {
    const dir = mkdtempSync(join(tmpdir(), 'geosfu-units-'));
    try {
      for (const unit of ['sfu-node@.service', 'coturn-geosfu.service'])
        copyFileSync(join(ROOT, 'infra/systemd', unit), join(dir, unit));
      // A template is verified through an instance; instance 4 of a four-core host.
      const result = spawnSync(
        'systemd-analyze',
        ['verify', join(dir, 'sfu-node@4.service'), join(dir, 'coturn-geosfu.service')],
        { encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr);
      // A directive systemd does not understand is only a warning: none are allowed.
      assert.equal(result.stderr.trim(), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the compose file's Prometheus config passes promtool", () => {
    const result = spawnSync(
      'promtool',
      ['check', 'config', join(ROOT, 'infra/compose/prometheus.yml')],
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  });
});
