/**
 * The demo page in real Chromium against one real SFU node: two people see and hear each other,
 * and after one of them reloads the page, they see each other again with no stale participant.
 *
 * Everything is observed through the page's `window.__sfu` hook and the subscriber
 * PeerConnection's getStats(). Set DEMO_SCREENSHOT=/path.png to save a screenshot of the call.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { openBrowser } from '../helpers/browser.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';

const BUILD_WEB = fileURLToPath(
  new URL('../../packages/client/scripts/build-web.mjs', import.meta.url),
);
const MEDIA_TIMEOUT_MS = 30_000;

/** One inbound RTP stream of a page's subscriber PeerConnection, with whom it comes from. */
interface Inbound {
  id: string;
  kind: string;
  mid: string | null;
  framesDecoded: number;
  packetsReceived: number;
  participantSid: string | null;
  identity: string | null;
}

interface PageView {
  state: string;
  sessionId: string | null;
  participants: string[];
  inbound: Inbound[];
}

/** The page's globals as the evaluated functions see them (the test has no DOM typings). */
interface StatsLike {
  type: string;
  id: string;
  [field: string]: unknown;
}
interface PageGlobals {
  __sfu?: {
    state: string;
    sessionId: string | null;
    participants(): string[];
    subscribedTracks(): { mid: string; participantSid: string; identity: string }[];
    subscriberPc: { getStats(): Promise<{ forEach(cb: (s: StatsLike) => void): void }> } | null;
  };
}

/**
 * Reads the page's state and inbound streams. The function runs in the page, so it must not
 * declare named functions (tsx would wrap them in a helper the page does not have).
 */
function view(page: Page): Promise<PageView> {
  return page.evaluate(async () => {
    const sfu = (globalThis as unknown as PageGlobals).__sfu;
    if (!sfu) return { state: 'no-hook', sessionId: null, participants: [], inbound: [] };
    const inbound: Inbound[] = [];
    const pc = sfu.subscriberPc;
    if (pc) {
      const tracks = sfu.subscribedTracks();
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const mid = typeof s.mid === 'string' ? s.mid : null;
        const track = tracks.find((t) => t.mid === mid);
        inbound.push({
          id: s.id,
          kind: String(s.kind),
          mid,
          framesDecoded: typeof s.framesDecoded === 'number' ? s.framesDecoded : 0,
          packetsReceived: typeof s.packetsReceived === 'number' ? s.packetsReceived : 0,
          participantSid: track?.participantSid ?? null,
          identity: track?.identity ?? null,
        });
      });
    }
    return {
      state: sfu.state,
      sessionId: sfu.sessionId,
      participants: sfu.participants(),
      inbound,
    };
  });
}

/** Polls the page until `check` returns true; on timeout fails with the last view. */
async function until(
  page: Page,
  what: string,
  check: (v: PageView) => boolean,
  timeoutMs = MEDIA_TIMEOUT_MS,
): Promise<PageView> {
  const deadline = Date.now() + timeoutMs;
  let last: PageView | string | undefined;
  while (Date.now() < deadline) {
    try {
      const current = await view(page);
      last = current;
      if (check(current)) return current;
    } catch (error) {
      // A page that is navigating has no context to evaluate in for a moment: poll again.
      last = `page.evaluate failed: ${(error as Error).message}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.fail(
    `timed out after ${timeoutMs} ms waiting for ${what}; last view: ${JSON.stringify(last)}`,
  );
}

const receivesFrom =
  (identity: string, sessionId?: string, baseline = new Map<string, number>()) =>
  (v: PageView) => {
    const from = v.inbound.filter(
      (s) => s.identity === identity && (sessionId === undefined || s.participantSid === sessionId),
    );
    const video = from.some(
      (s) => s.kind === 'video' && s.framesDecoded > (baseline.get(s.id) ?? 0),
    );
    const audio = from.some(
      (s) => s.kind === 'audio' && s.packetsReceived > (baseline.get(s.id) ?? 0),
    );
    return video && audio;
  };

describe('demo page', () => {
  let node: NodeProcess;
  const room = `e2e-${randomBytes(4).toString('hex')}`;

  before(async () => {
    // Test what the sources say, not a stale bundle.
    const build = spawnSync(process.execPath, [BUILD_WEB], { encoding: 'utf8' });
    assert.equal(build.status, 0, `building the demo page failed:\n${build.stderr}`);
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
    let passed = false;
    t.after(() => {
      if (passed) return;
      const warnings = node.logs.filter((entry) => Number(entry.level) >= 40);
      process.stderr.write(`browser console:\n${browser.logs.join('\n')}\n`);
      process.stderr.write(
        `node warnings:\n${warnings.map((e) => JSON.stringify(e)).join('\n')}\n`,
      );
    });
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    await alice.goto(pageUrl('alice'));
    await bob.goto(pageUrl('bob'));

    await until(alice, 'alice to join', (v) => v.state === 'joined');
    const bobBefore = await until(bob, 'bob to join', (v) => v.state === 'joined');

    await until(alice, 'alice to decode video and receive audio from bob', receivesFrom('bob'));
    await until(bob, 'bob to decode video and receive audio from alice', receivesFrom('alice'));

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
      'alice to show exactly one bob',
      (v) => v.participants.filter((p) => p === 'bob').length === 1,
    );
    assert.deepEqual(
      (await view(alice)).participants,
      ['bob'],
      `alice should see only bob; last streams: ${JSON.stringify(final.inbound)}`,
    );
    await until(bob, 'bob (reloaded) to receive media from alice', receivesFrom('alice'));
    assert.deepEqual((await view(bob)).participants, ['alice']);
    passed = true;
  });
});
