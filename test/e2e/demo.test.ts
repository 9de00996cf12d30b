/**
 * The demo page in real Chromium against one real SFU node: both pages route through its
 * /v1/route to the node itself and show it in the header; two people see and hear each other,
 * and after one of them reloads the page, they see each other again with no stale participant.
 *
 * Everything is observed through the page's `window.__sfu` hook and the subscriber
 * PeerConnection's getStats(). Set DEMO_SCREENSHOT=/path.png to save a screenshot of the call.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openBrowser } from '../helpers/browser.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { receivesFrom, reportOnFailure, until, view } from './page-view.js';
import { buildDemoPage } from './setup.js';

describe('demo page', () => {
  let node: NodeProcess;
  const room = `e2e-${randomBytes(4).toString('hex')}`;

  before(async () => {
    // Test what the sources say, not a stale bundle.
    buildDemoPage();
    node = await startNode();
  });

  after(async () => {
    await node?.stop();
  });

  const pageUrl = (name: string) =>
    `${node.url}/?${new URLSearchParams({ room, name, autojoin: '1' })}`;

  test('two people see and hear each other, also after one reloads', {
    timeout: 120_000,
  }, async (t) => {
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [node]);
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    await alice.goto(pageUrl('alice'));
    await bob.goto(pageUrl('bob'));

    const aliceJoined = await until(alice, 'alice to join', (v) => v.state === 'joined');
    const bobBefore = await until(bob, 'bob to join', (v) => v.state === 'joined');
    // Both asked the node's /v1/route first, which sent them to the node itself.
    for (const v of [aliceJoined, bobBefore]) {
      assert.equal(v.nodeId, node.nodeId);
      assert.equal(v.region, node.region);
      assert.equal(v.nodeLabel, `${node.region} · ${node.nodeId}`);
    }

    await until(alice, 'alice to decode video and receive audio from bob', receivesFrom('bob'));
    await until(bob, 'bob to decode video and receive audio from alice', receivesFrom('alice'));
    // The node's view of alice's own streams (the `stats` request, every 5 s; bitrates from
    // the second reply on) joins the stats line.
    await alice.waitForFunction(
      "/^node ⇡[1-9][0-9.]* [kM]bps ⇣[1-9][0-9.]* [kM]bps · RTT /.test(document.querySelector('#stats .node-view')?.textContent ?? '')",
      undefined,
      { timeout: 30_000 },
    );

    if (process.env.DEMO_SCREENSHOT) {
      // Let the stats line fill in and the videos settle before taking the picture.
      await alice.waitForFunction(
        "/↑ [1-9].*↓ [1-9]/.test(document.getElementById('stats')?.textContent ?? '')",
      );
      await alice.screenshot({ path: process.env.DEMO_SCREENSHOT });
    }

    // Bob reloads. Alice must end up with exactly one bob, the new session, decoding new frames.
    const beforeReload = await view(alice);
    const baseline = new Map(
      beforeReload.inbound.map((s) => [
        s.id,
        s.kind === 'video' ? s.framesDecoded : s.packetsReceived,
      ]),
    );
    await bob.reload();
    const bobAfter = await until(
      bob,
      'bob to join again after the reload',
      (v) => v.state === 'joined' && v.sessionId !== null && v.sessionId !== bobBefore.sessionId,
    );
    const newSid = bobAfter.sessionId ?? '';

    const final = await until(
      alice,
      `alice to receive media from bob's new session ${newSid}`,
      receivesFrom('bob', newSid, baseline),
    );
    await until(
      alice,
      `alice to show only bob (last streams: ${JSON.stringify(final.inbound)})`,
      (v) => v.participants.length === 1 && v.participants[0] === 'bob',
    );
    await until(bob, 'bob (reloaded) to receive media from alice', receivesFrom('alice'));
    await until(
      bob,
      'bob (reloaded) to show only alice',
      (v) => v.participants.length === 1 && v.participants[0] === 'alice',
    );
    markPassed();
  });
});
