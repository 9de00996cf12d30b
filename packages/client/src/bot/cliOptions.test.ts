/** `sfu-bot` flag validation: parseCli directly, and the real CLI's exit code on bad usage. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCli, UsageError } from './cliOptions.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const BASE = ['--url', 'http://127.0.0.1:7880', '--room', 'r', '--identity', 'i'];

describe('parseCli', () => {
  it('takes --region or --node as a pin', () => {
    const region = parseCli([...BASE, '--region', 'ams']);
    assert.ok(region !== 'help');
    assert.equal(region.region, 'ams');
    assert.equal(region.node, undefined);
    const node = parseCli([...BASE, '--node', 'node-1']);
    assert.ok(node !== 'help');
    assert.equal(node.node, 'node-1');
    assert.equal(node.region, undefined);
    const none = parseCli(BASE);
    assert.ok(none !== 'help');
    assert.equal(none.region ?? none.node, undefined);
  });

  it('refuses --region together with --node', () => {
    assert.throws(
      () => parseCli([...BASE, '--region', 'ams', '--node', 'node-1']),
      (error: unknown) =>
        error instanceof UsageError &&
        /--region and --node are mutually exclusive/.test(error.message),
    );
  });

  it('refuses an empty pin', () => {
    assert.throws(() => parseCli([...BASE, '--region', ' ']), /--region needs a value/);
  });

  it('takes --simulcast for a published VP8 video only', () => {
    const ok = parseCli([...BASE, '--publish', 'video,audio', '--simulcast']);
    assert.ok(ok !== 'help');
    assert.equal(ok.publish?.simulcast, true);
    const plain = parseCli([...BASE, '--publish', 'video']);
    assert.ok(plain !== 'help');
    assert.equal(plain.publish?.simulcast, undefined);
    assert.throws(() => parseCli([...BASE, '--simulcast']), /--simulcast needs --publish video/);
    assert.throws(
      () => parseCli([...BASE, '--publish', 'audio', '--simulcast']),
      /--simulcast needs --publish video/,
    );
    assert.throws(
      () => parseCli([...BASE, '--publish', 'video', '--codec', 'h264', '--simulcast']),
      /not with --codec h264/,
    );
  });
});

describe('sfu-bot', () => {
  it('exits 2 with a clear message when both pins are given', () => {
    const r = spawnSync(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', CLI, ...BASE, '--region', 'ams', '--node', 'n1'],
      { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 2, `exit ${r.status}; stderr:\n${r.stderr}`);
    assert.match(
      r.stderr,
      /^sfu-bot: --region and --node are mutually exclusive: pin a region or a node, not both/,
    );
    assert.match(r.stderr, /usage: sfu-bot/);
    assert.equal(r.stdout, '');
  });

  it('documents the pins in --help', () => {
    const r = spawnSync(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', CLI, '--help'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--region R/);
    assert.match(r.stdout, /--node ID/);
    assert.match(r.stdout, /--simulcast/);
  });
});

describe('--turn-transport', () => {
  it('takes udp, tcp or tls', () => {
    const tcp = parseCli([...BASE, '--turn-transport', 'tcp']);
    assert.ok(tcp !== 'help');
    assert.equal(tcp.turnTransport, 'tcp');
    assert.throws(() => parseCli([...BASE, '--turn-transport', 'sctp']), /udp, tcp or tls/);
  });
});
