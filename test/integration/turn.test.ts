/**
 * TURN with short-lived credentials, with real parts: Debian's coturn started with
 * infra/coturn/turnserver.conf and a shared secret; a node that mints a credential per session
 * (SFU_TURN_URLS, SFU_TURN_SECRET); and a werift bot (`sfu-bot`) in a network namespace whose
 * firewall (nftables, in that namespace) drops every UDP packet. The bot reaches the node only
 * through TURN over TCP and exchanges media both ways over relay candidate pairs; the same bot
 * against a node without TURN cannot connect; coturn refuses an expired credential.
 *
 * Needs root, iproute2, nftables and coturn (.ci/run installs them).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Bot } from '@geosfu/client/bot';
import { turnCredential } from '@geosfu/node';
import { createTurnClient, RTCPeerConnection } from 'werift';
import { type Coturn, startCoturn } from '../helpers/coturn.js';
import { createShapedNamespace, type ShapedNamespace } from '../helpers/netns.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { devTokens } from '../helpers/rooms.js';
import { waitUntil } from '../helpers/wait.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BOT_CLI = fileURLToPath(new URL('../../packages/client/src/bot/cli.ts', import.meta.url));

/** Drops all UDP in and out of the namespace, counting what it drops. */
const NO_UDP = `table inet geosfu_no_udp {
  chain out { type filter hook output priority 0; policy accept; meta l4proto udp counter drop; }
  chain in { type filter hook input priority 0; policy accept; meta l4proto udp counter drop; }
}`;

interface BotRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `sfu-bot` inside the namespace (the way a user on that network would). */
function botInNamespace(net: ShapedNamespace, args: string[]): Promise<BotRun> {
  return new Promise((resolve) => {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        net.name,
        process.execPath,
        '--conditions=source',
        '--import',
        'tsx',
        BOT_CLI,
        '--host-addresses',
        net.nsAddress,
        '--log-level',
        'warn',
        ...args,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function droppedUdpPackets(net: ShapedNamespace): Promise<number> {
  const { stdout } = await run('ip', ['netns', 'exec', net.name, 'nft', 'list', 'ruleset']);
  let total = 0;
  for (const m of stdout.matchAll(/counter packets (\d+)/g)) total += Number(m[1]);
  return total;
}

describe('TURN over TCP from a network that drops UDP', () => {
  let net: ShapedNamespace;
  let coturn: Coturn;
  let node: NodeProcess;
  let open: Bot | undefined;

  before(async () => {
    net = await createShapedNamespace();
    const child = spawn('ip', ['netns', 'exec', net.name, 'nft', '-f', '-'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    child.stdin.end(NO_UDP);
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0, 'nft could not load the no-UDP ruleset');
    coturn = await startCoturn(net.hostAddress, [net.hostAddress]);
    node = await startNode({
      args: net.nodeArgs(await freePort()),
      env: { SFU_TURN_URLS: coturn.urls.join(','), SFU_TURN_SECRET: coturn.secret },
    });
  });

  after(async () => {
    await open?.close();
    await node?.stop();
    await coturn?.stop();
    await net?.close();
  });

  test('the bot joins through TURN over TCP and media flows both ways on relay pairs', {
    timeout: 60_000,
  }, async () => {
    const room = `turn-${randomBytes(4).toString('hex')}`;
    // A participant on an open network, on the node's side of the veth.
    open = await Bot.connect({
      url: node.url,
      room,
      identity: 'open',
      publish: { video: true, audio: true },
      subscribe: true,
      hostAddresses: [net.hostAddress],
    });
    const turn = open.joined.iceServers.find((s) => s.username !== undefined);
    assert.deepEqual(turn?.urls, coturn.urls, 'joined lists the node TURN URLs');
    const [expiry, identity] = String(turn?.username).split(':');
    assert.equal(identity, 'open');
    // The dev token lives an hour; the credential expires with it.
    assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 3600)) < 120, `expiry ${expiry}`);

    const result = await botInNamespace(net, [
      '--url',
      node.url,
      '--room',
      room,
      '--identity',
      'walled',
      '--publish',
      'video,audio',
      '--subscribe',
      '--duration',
      '5',
      '--json',
      '--turn-transport',
      'tcp',
    ]);
    assert.equal(result.code, 0, `sfu-bot failed:\n${result.stderr}\ncoturn:\n${coturn.log()}`);
    const report = JSON.parse(result.stdout) as {
      candidates: Record<'publisher' | 'subscriber', { local: string; remote: string } | null>;
      received: { participant: string; kind: string; packets: number }[];
      sent: { kind: string; packets: number }[];
    };
    assert.equal(report.candidates.publisher?.local, 'relay', 'publisher pair via TURN');
    assert.equal(report.candidates.subscriber?.local, 'relay', 'subscriber pair via TURN');
    for (const kind of ['video', 'audio']) {
      const got = report.received.find((r) => r.participant === 'open' && r.kind === kind);
      assert.ok((got?.packets ?? 0) > 20, `the walled bot received ${kind}: ${got?.packets}`);
    }
    // ... and the open participant received what the walled bot sent, through the relay.
    await waitUntil('the open bot to have received the walled bot video and audio', () => {
      const stats = open?.stats().received ?? [];
      const ok = ['video', 'audio'].every(
        (kind) =>
          (stats.find((r) => r.participant === 'walled' && r.kind === kind)?.packets ?? 0) > 20,
      );
      return ok ? true : undefined;
    });
    assert.ok((await droppedUdpPackets(net)) > 0, 'the firewall dropped UDP: the block is real');
  });

  test('without TURN the same bot cannot connect', { timeout: 60_000 }, async () => {
    // The node gives up on a PeerConnection that never connects after 3 s (the least allowed).
    const plain = await startNode({
      args: [...net.nodeArgs(await freePort()), '--peer-timeout-ms', '3000'],
    });
    try {
      const result = await botInNamespace(net, [
        '--url',
        plain.url,
        '--room',
        `noturn-${randomBytes(4).toString('hex')}`,
        '--identity',
        'walled',
        '--publish',
        'video',
        '--duration',
        '3',
      ]);
      assert.equal(result.code, 1, `the bot connected without TURN:\n${result.stdout}`);
      assert.match(result.stderr, /before it connected|not connected within/);
    } finally {
      await plain.stop();
    }
  });

  test('a WHIP session gets the TURN servers with its own credential as Link headers', {
    timeout: 30_000,
  }, async (t) => {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceUseIpv6: false });
    t.after(() => pc.close());
    pc.addTransceiver('video', { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const room = `whip-turn-${randomBytes(4).toString('hex')}`;
    const token = await devTokens.mint({ room, identity: 'encoder' });
    const reply = await fetch(`${node.url}/v1/whip/${room}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: pc.localDescription?.sdp ?? '',
    });
    assert.equal(reply.status, 201, await reply.clone().text());
    const links = (reply.headers.get('link') ?? '').split(/,\s*(?=<)/).filter(Boolean);
    assert.deepEqual(
      links.map((l) => /^<([^>]+)>/.exec(l)?.[1]),
      coturn.urls,
      'one Link per TURN URL of the node',
    );
    for (const link of links) {
      const username = /username="([^"]+)"/.exec(link)?.[1] ?? '';
      const credential = /credential="([^"]+)"/.exec(link)?.[1];
      const [expiry, identity] = username.split(':');
      assert.equal(identity, 'encoder');
      assert.equal(
        credential,
        turnCredential(coturn.secret, 'encoder', Number(expiry)).credential,
        'the coturn REST credential of that username',
      );
    }
    const location = reply.headers.get('location');
    assert.ok(location);
    assert.equal((await fetch(`${node.url}${location}`, { method: 'DELETE' })).status, 200);
  });

  test('coturn allocates with a valid credential and refuses an expired one', {
    timeout: 30_000,
  }, async () => {
    const address: [string, number] = [coturn.address, coturn.port];
    const now = Date.now() / 1000;
    const valid = turnCredential(coturn.secret, 'probe', now + 300);
    const client = await createTurnClient(
      { address, username: valid.username, password: valid.credential },
      { transport: 'tcp', connectTimeoutMs: 5_000 },
    );
    assert.ok(client.relayedAddress, 'a relay address was allocated');
    await client.close();

    // coturn answers 401 to both (werift retries, then gives up); its log says why.
    const expired = turnCredential(coturn.secret, 'expired', now - 60);
    const forged = turnCredential('not-the-secret-of-this-turn-server', 'forged', now + 300);
    await Promise.all(
      [expired, forged].map((c) =>
        assert.rejects(
          createTurnClient(
            { address, username: c.username, password: c.credential },
            { transport: 'tcp', connectTimeoutMs: 5_000 },
          ),
        ),
      ),
    );
    assert.match(
      coturn.log(),
      new RegExp(`check_stun_auth: Cannot find credentials of user <${expired.username}>`),
    );
    assert.doesNotMatch(coturn.log(), /Cannot find credentials of user <\d+:probe>/);
  });
});
