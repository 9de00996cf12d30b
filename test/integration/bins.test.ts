/**
 * Every bin a workspace's package.json names is linked by `npm ci` and runs from the
 * repository root without the registry (`npx --no-install`), once `npm run build` has run.
 * A bin that is not linked makes `npx` ask the registry for a package of that name: a
 * stranger's code could run in its place. `npm test` builds before this tier.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Manifest {
  name: string;
  workspaces?: string[];
  bin?: Record<string, string>;
}
const manifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as Manifest;

const bins = (manifest('.').workspaces ?? []).flatMap((dir) =>
  Object.entries(manifest(dir).bin ?? {}).map(([name, file]) => ({
    name,
    dir,
    file: join(ROOT, dir, file),
  })),
);

/** What each bin prints for `--help`; `sfu-node token` is what the README shows first. */
const HELP: Record<string, { args: string[]; expect: RegExp }> = {
  'sfu-node': {
    args: ['token', '--dev', '--room', 'r', '--identity', 'i'],
    expect: /^ey[\w-]+\.[\w-]+\.[\w-]+\s*$/,
  },
  'sfu-bot': { args: ['--help'], expect: /^usage: sfu-bot/ },
  'sfu-directory': { args: ['--help'], expect: /^usage: sfu-directory/ },
  'sfu-lab': { args: ['--help'], expect: /sfu-lab up/ },
  'sfu-experiment': { args: ['--help'], expect: /sfu-experiment run/ },
};

describe('workspace bins', () => {
  test('the workspaces name the bins the README uses', () => {
    const names = bins.map((b) => b.name).sort();
    assert.deepEqual(names, Object.keys(HELP).sort());
  });

  for (const bin of bins) {
    test(`${bin.name} (${bin.dir}) is linked, executable and runs with npx --no-install`, async () => {
      const link = join(ROOT, 'node_modules/.bin', bin.name);
      assert.equal(
        realpathSync(link),
        realpathSync(bin.file),
        'node_modules/.bin points at the bin',
      );
      accessSync(bin.file, constants.X_OK);
      const help = HELP[bin.name];
      assert.ok(help, `no expectation for ${bin.name}`);
      const { stdout } = await run('npx', ['--no-install', bin.name, ...help.args], {
        cwd: ROOT,
        timeout: 60_000,
      });
      assert.match(stdout, help.expect);
    });
  }

  test('a bin whose build is missing says how to build it', async () => {
    const script = `import { runBuilt } from '@geosfu/common/run-built';
await runBuilt('sfu-x', new URL('file:///nonexistent/geosfu/dist/cli.js'));`;
    const failed = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
    }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    assert.ok(failed, 'exits non-zero');
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr ?? '',
      /sfu-x: .*dist\/cli\.js is missing: run `npm run build` first/,
    );
  });
});
