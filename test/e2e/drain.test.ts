/**
 * The demo page moves off a draining node: two nodes share a real Redis registry; alice's page
 * is pinned (`?node=`) to node A, bob's to node B. When A is drained, A tells alice to
 * reconnect elsewhere; her page routes again, shows "Node is draining: moving you to ...",
 * joins B with her camera, and alice and bob see and hear each other there.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import { openBrowser } from '../helpers/browser.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { receivesFrom, reportOnFailure, until } from './page-view.js';
import { buildDemoPage, waitForRoute } from './setup.js';

const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

/** The page's document as the evaluated functions see it (the test has no DOM typings). */
interface PageDocument {
  document: { getElementById(id: string): { textContent: string | null } | null };
}

/** Polls until A's own /v1/route knows B (registry membership reaches every node). */
async function waitForPeerNode(via: NodeProcess, peer: NodeProcess, room: string): Promise<void> {
  await waitForRoute(
    via,
    room,
    { node: peer.nodeId },
    (response) => response.ok,
    `${via.nodeId} never routed to ${peer.nodeId}`,
  );
}

describe('demo page on a draining node', () => {
  let redis: RedisServer;
  let a: NodeProcess;
  let b: NodeProcess;
  const room = `drain-${randomBytes(4).toString('hex')}`;

  before(async () => {
    buildDemoPage();
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, SFU_DRAIN_TIMEOUT_MS: '5000' };
    [a, b] = await Promise.all([
      startNode({ nodeId: 'e2e-a', region: 'ams', env }),
      startNode({ nodeId: 'e2e-b', region: 'fra', env }),
    ]);
  });

  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  test('moves the page to another node and keeps the call going', {
    timeout: 120_000,
  }, async (t) => {
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [a, b]);
    await waitForPeerNode(a, b, room);
    await waitForPeerNode(b, a, room);

    const alice = await browser.newPage();
    const bob = await browser.newPage();
    const pageUrl = (name: string, node: NodeProcess) =>
      `${node.url}/?${new URLSearchParams({ room, name, autojoin: '1', node: node.nodeId })}`;
    await alice.goto(pageUrl('alice', a));
    await bob.goto(pageUrl('bob', b));
    const before = await until(alice, 'alice to join on A', (v) => v.state === 'joined');
    assert.equal(before.nodeId, a.nodeId);
    assert.equal(before.nodeLabel, `ams · ${a.nodeId}`);
    await until(bob, 'bob to join on B', (v) => v.state === 'joined' && v.nodeId === b.nodeId);

    const admin = await tokens.mint({
      room,
      identity: 'operator',
      name: 'operator',
      grants: { admin: true },
    });
    const drain = await fetch(`${a.url}/v1/admin/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(drain.status, 202, await drain.text());

    // Through B's /v1/route the notice names B's region. Until nodes answer /v1/route with
    // CORS headers, a page on A cannot read B's answer and joins B's websocket directly (the
    // node A named), so the notice names B's host instead.
    const notice = `Node is draining: moving you to (fra|${new URL(b.url).host.replace(/\./g, '\\.')})\\.\\.\\.`;
    await alice.waitForFunction(
      (pattern) =>
        new RegExp(pattern).test(
          (globalThis as unknown as PageDocument).document.getElementById('toasts')?.textContent ??
            '',
        ),
      notice,
      { timeout: 10_000 },
    );
    const moved = await until(
      alice,
      'alice to join again on B',
      (v) => v.state === 'joined' && v.nodeId === b.nodeId && v.sessionId !== before.sessionId,
    );
    assert.equal(moved.region, 'fra');
    assert.equal(moved.nodeLabel, `fra · ${b.nodeId}`);

    await until(bob, 'bob to receive alice on B', receivesFrom('alice', moved.sessionId ?? ''));
    await until(alice, 'alice to receive bob on B', receivesFrom('bob'));
    markPassed();
  });
});
