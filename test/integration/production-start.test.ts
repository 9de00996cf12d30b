/**
 * The exact production start of the image, without a Docker engine: the built checkout is
 * staged with infra/docker/stage-production.sh (what the Dockerfile's build stage runs: the
 * built code and production dependencies only) into a temp dir, and the runtime stage's CMD
 * runs there with its ENV, read from the Dockerfile. Two werift bots hold a call through it;
 * the HEALTHCHECK command passes; SIGTERM drains the node and it exits 0.
 *
 * Needs `npm run build` first (the staging script says so) and the npm cache of `npm ci`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Bot } from '@geosfu/client/bot';
import { TokenService } from '@geosfu/common';
import { onExit } from '../helpers/exit.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const API_KEY = 'prodkey';
const API_SECRET = randomBytes(32).toString('hex');

/** The runtime stage (the last FROM) of the Dockerfile: its ENV, WORKDIR and CMD. */
function runtimeStage(): { env: Record<string, string>; cmd: string[] } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const line of stage.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/([A-Z_]+)=(\S+)/g))
      env[m[1] as string] = m[2] as string;
  }
  const cmd = /^CMD (\[.*\])$/m.exec(stage)?.[1];
  assert.ok(cmd, 'the runtime stage has an exec-form CMD');
  assert.match(stage, /^WORKDIR \/opt\/geosfu$/m);
  assert.match(stage, /^USER node$/m, 'the image runs as an unprivileged user');
  assert.match(stage, /^HEALTHCHECK .*CMD \["node", "healthcheck\.mjs"\]$/m);
  return { env, cmd: JSON.parse(cmd) as string[] };
}

describe('the production start of the image', () => {
  let dir: string;
  let app: string;
  let child: ChildProcess | undefined;
  let port: number;
  let env: Record<string, string>;
  const logs: string[] = [];
  const bots: Bot[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'geosfu-prod-'));
    onExit(() => rmSync(dir, { recursive: true, force: true }));
    app = join(dir, 'opt/geosfu');
    const stage = spawnSync('sh', [join(ROOT, 'infra/docker/stage-production.sh'), ROOT, app], {
      encoding: 'utf8',
    });
    assert.equal(stage.status, 0, `staging failed:\n${stage.stdout}${stage.stderr}`);
    // The Dockerfile copies this next to the code.
    spawnSync('cp', [join(ROOT, 'infra/docker/healthcheck.mjs'), app]);
  });

  after(async () => {
    await Promise.allSettled(bots.map((b) => b.close()));
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('the staged install has no dev dependencies and no sources', () => {
    for (const dev of ['typescript', 'tsx', 'esbuild', '@biomejs', 'playwright-core'])
      assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} is a dev dependency`);
    assert.ok(existsSync(join(app, 'node_modules/werift')));
    assert.ok(!existsSync(join(app, 'packages/node/src')));
    assert.ok(existsSync(join(app, 'packages/client/dist/web/index.html')), 'the demo page');
  });

  test('CMD serves a call, passes the health check and drains on SIGTERM', {
    timeout: 90_000,
  }, async () => {
    const stage = runtimeStage();
    port = await freePort();
    const rtcBase = 41_000 + (randomBytes(2).readUInt16BE(0) % 80) * 100;
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...stage.env,
      // What an operator sets (compose's .env); ports free on this machine.
      SFU_HTTP_HOST: '127.0.0.1',
      SFU_HTTP_PORT: String(port),
      SFU_METRICS_PORT: String(await freePort()),
      SFU_RTC_PORT_RANGE: `${rtcBase}-${rtcBase + 99}`,
      SFU_RTC_HOST_ADDRESSES: '127.0.0.1',
      SFU_API_KEY: API_KEY,
      SFU_API_SECRET: API_SECRET,
      SFU_LOG_LEVEL: 'info',
    };
    const [file, ...args] = stage.cmd;
    assert.equal(file, 'node');
    child = spawn(process.execPath, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child.stdout?.on('data', (d: Buffer) => logs.push(...d.toString().split('\n')));
    child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
    await waitUntil(
      'the node to listen',
      () => (logs.some((l) => l.includes('"node listening"')) ? true : undefined),
      30_000,
      100,
      () => logs.join('\n'),
    );

    const health = spawnSync(process.execPath, ['healthcheck.mjs'], { cwd: app, env });
    assert.equal(health.status, 0, 'HEALTHCHECK passes');

    const tokens = new TokenService(API_KEY, API_SECRET);
    const room = `prod-${randomBytes(4).toString('hex')}`;
    const url = `http://127.0.0.1:${port}`;
    for (const identity of ['a', 'b']) {
      bots.push(
        await Bot.connect({
          url,
          token: await tokens.mint({ room, identity }),
          publish: { video: true, audio: true },
          subscribe: true,
          hostAddresses: ['127.0.0.1'],
        }),
      );
    }
    await waitUntil('both bots to receive video and audio from the other', () => {
      const ok = bots.every((bot, i) =>
        ['video', 'audio'].every(
          (kind) =>
            (bot
              .stats()
              .received.find((r) => r.participant === (i === 0 ? 'b' : 'a') && r.kind === kind)
              ?.packets ?? 0) > 20,
        ),
      );
      return ok ? true : undefined;
    });

    // SIGTERM, as `docker stop` sends it to PID 1: the node drains (the bots are told to
    // reconnect elsewhere and leave), then exits 0.
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, logs.join('\n'));
    assert.ok(logs.some((l) => l.includes('draining, then shutting down')));
    await waitUntil('the bots to be told to leave', () =>
      bots.every((b) => b.closed) ? true : undefined,
    );
  });
});
