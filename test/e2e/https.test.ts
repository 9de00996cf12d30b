/**
 * A node serving HTTPS and WSS itself (SFU_TLS_CERT, SFU_TLS_KEY), reached the way a person on
 * another machine reaches it: Chromium in its own network namespace opens the demo page at
 * https://sfu.geosfu.test:<port>, a name that resolves to the node's address on a veth (not
 * localhost), with a certificate the test made and that browser profile trusts (its SPKI hash).
 * The origin is secure, so the page may open the camera: two pages, joining a node outside dev
 * mode with tokens in their URL (`?token=`), publish and decode each other. Then the certificate is renewed on disk and the node serves the new one without a
 * restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import { TokenService } from '@geosfu/common';
import { openBrowser } from '../helpers/browser.js';
import { createShapedNamespace, type ShapedNamespace } from '../helpers/netns.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { makeCertificate, type TestCertificate } from '../helpers/tls.js';
import { waitUntil } from '../helpers/wait.js';
import { receivesFrom, reportOnFailure, until } from './page-view.js';
import { buildDemoPage } from './setup.js';

const HOST = 'sfu.geosfu.test';
const API_KEY = 'tls-test';
const API_SECRET = randomBytes(32).toString('hex');
const tokens = new TokenService(API_KEY, API_SECRET);

/** The fingerprint of the certificate the server at address:port presents now. */
function servedFingerprint(address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, servername: HOST, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('HTTPS and WSS on the node', () => {
  let net: ShapedNamespace;
  let node: NodeProcess;
  let dir: string;
  let cert: TestCertificate;
  let port: number;
  const room = `tls-${randomBytes(4).toString('hex')}`;

  before(async () => {
    buildDemoPage();
    dir = mkdtempSync(join(tmpdir(), 'geosfu-tls-'));
    net = await createShapedNamespace();
    cert = makeCertificate(dir, { dns: [HOST], ips: [net.hostAddress] });
    port = await freePort();
    // Not a dev node: the pages join with tokens, as they would in production.
    node = await startNode({
      dev: false,
      env: { SFU_API_KEY: API_KEY, SFU_API_SECRET: API_SECRET },
      args: [
        ...net.nodeArgs(port),
        '--public-url',
        `https://${HOST}:${port}`,
        '--tls-cert',
        cert.certPath,
        '--tls-key',
        cert.keyPath,
      ],
    });
  });

  after(async () => {
    await node?.stop();
    await net?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the demo page over HTTPS from another address publishes and decodes camera video', {
    timeout: 120_000,
  }, async (t) => {
    const browser = await openBrowser({
      t,
      executablePath: net.chromiumPath,
      extraArgs: [
        `--host-resolver-rules=MAP ${HOST} ${net.hostAddress}`,
        `--ignore-certificate-errors-spki-list=${cert.spkiHash}`,
      ],
    });
    const markPassed = reportOnFailure(t, browser, [node]);
    const url = async (name: string) => {
      const token = await tokens.mint({ room, identity: name });
      return `https://${HOST}:${port}/?${new URLSearchParams({ room, name, token, autojoin: '1' })}`;
    };
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    await alice.goto(await url('alice'));
    await bob.goto(await url('bob'));
    const origin = await alice.evaluate('[location.protocol, window.isSecureContext]');
    assert.deepEqual(origin, ['https:', true]);
    await until(alice, 'alice to join over wss', (v) => v.state === 'joined');
    await until(bob, 'bob to join over wss', (v) => v.state === 'joined');
    await until(alice, 'alice to decode video and receive audio from bob', receivesFrom('bob'));
    await until(bob, 'bob to decode video and receive audio from alice', receivesFrom('alice'));
    const sent = Number(
      await alice.evaluate(`(async () => {
        let frames = 0;
        (await window.__sfu.publisherPc.getStats()).forEach((s) => {
          if (s.type === 'outbound-rtp' && s.kind === 'video') frames += s.framesSent ?? 0;
        });
        return frames;
      })()`),
    );
    assert.ok(sent > 0, `alice's camera sent ${sent} frames`);
    markPassed();
  });

  test('a renewed certificate is served without a restart', { timeout: 30_000 }, async () => {
    assert.equal(await servedFingerprint(net.hostAddress, port), cert.fingerprint256);
    const renewed = makeCertificate(dir, { dns: [HOST], ips: [net.hostAddress] });
    assert.notEqual(renewed.fingerprint256, cert.fingerprint256);
    await waitUntil('the node to serve the renewed certificate', async () =>
      (await servedFingerprint(net.hostAddress, port)) === renewed.fingerprint256
        ? true
        : undefined,
    );
    assert.ok(node.logs.some((l) => l.msg === 'TLS certificate reloaded'));
  });
});
