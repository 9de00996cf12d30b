/**
 * The demo page's side of simulcast, in real Chromium against one real SFU node: the camera's
 * offer carries three rids and the publish request declares them; each remote tile tells the
 * node how it is shown (`subscription.settings`: its rendered size in device pixels, hidden
 * when collapsed) and exposes its decoding in the page's test view; a click on a tile's pin
 * control moves the video between layers.
 *
 * Observed through the page's `window.__sfu` hook, its getStats() and its real websocket.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openBrowser } from '../helpers/browser.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { waitUntil } from '../helpers/wait.js';
import { MEDIA_TIMEOUT_MS, type RemoteVideo, reportOnFailure, until } from './page-view.js';
import { buildDemoPage } from './setup.js';
import { recordSignalling, type SignalFrame, type SignallingLog } from './signalling-log.js';

/** The settings the page sent last for `trackId`, from its websocket. */
function lastSettings(log: SignallingLog, trackId: string): SignalFrame | undefined {
  return log.sent.filter((m) => m.type === 'subscription.settings' && m.trackId === trackId).at(-1);
}

/** The size of a tile's video element in device pixels, as the page lays it out. */
function renderedSize(page: Page, sessionId: string): Promise<{ width: number; height: number }> {
  return page.evaluate((sid) => {
    const g = globalThis as unknown as {
      devicePixelRatio: number;
      document: {
        querySelector(s: string): { getBoundingClientRect(): { width: number; height: number } };
      };
    };
    const box = g.document.querySelector(`.tile[data-key="${sid}"] video`).getBoundingClientRect();
    return { width: box.width * g.devicePixelRatio, height: box.height * g.devicePixelRatio };
  }, sessionId);
}

/** Shows or collapses (display: none) the tile of `sessionId`, as a minimised tile would be. */
function collapseTile(page: Page, sessionId: string, collapsed: boolean): Promise<void> {
  return page.evaluate(
    ([sid, hide]) => {
      const g = globalThis as unknown as {
        document: { querySelector(s: string): { style: { display: string } } };
      };
      g.document.querySelector(`.tile[data-key="${sid}"]`).style.display = hide ? 'none' : '';
    },
    [sessionId, collapsed] as const,
  );
}

const videoFrom = (identity: string) => (v: { remoteVideos: RemoteVideo[] }) =>
  v.remoteVideos.find((r) => r.identity === identity);

describe('demo page simulcast', () => {
  let node: NodeProcess;

  before(async () => {
    buildDemoPage();
    node = await startNode();
  });

  after(async () => {
    await node?.stop();
  });

  const pageUrl = (room: string, name: string) =>
    `${node.url}/?${new URLSearchParams({ room, name, autojoin: '1' })}`;

  test('the camera goes out as three rids, and each remote tile reports how it is shown', {
    timeout: 120_000,
  }, async (t) => {
    const room = `e2e-sc-${randomBytes(4).toString('hex')}`;
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [node]);
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    const aliceLog = recordSignalling(alice);
    const bobLog = recordSignalling(bob);
    await alice.goto(pageUrl(room, 'alice'));
    await bob.goto(pageUrl(room, 'bob'));

    // The first publish: the offer's video m-line sends q, h and f, and the request declares
    // them lowest first at 1/4, 1/2 and the full capture (1280x720 from the fake camera).
    const publish = await waitUntil('alice to publish', () =>
      aliceLog.sent.find((m) => m.type === 'publish'),
    );
    const sdp = String(publish.sdp);
    assert.match(sdp, /^a=simulcast:send q;h;f\r?$/m);
    for (const rid of ['q', 'h', 'f'])
      assert.match(sdp, new RegExp(`^a=rid:${rid} send\\r?$`, 'm'));
    const tracks = publish.tracks as {
      kind: string;
      layers?: { rid: string; width: number; height: number; maxBitrate: number }[];
    }[];
    const camera = tracks.find((tr) => tr.kind === 'video');
    assert.deepEqual(
      camera?.layers?.map((l) => [l.rid, l.width, l.height]),
      [
        ['q', 320, 180],
        ['h', 640, 360],
        ['f', 1280, 720],
      ],
    );
    const caps = camera?.layers?.map((l) => l.maxBitrate) ?? [];
    assert.ok(
      caps.every((cap, i) => i === 0 || cap > (caps[i - 1] ?? 0)),
      `caps ${caps}`,
    );
    assert.equal(tracks.find((tr) => tr.kind === 'audio')?.layers, undefined);

    // Bob decodes alice's camera whatever the node made of the layers (a node without
    // simulcast gets one layer), and his view has the decoding fields the tests read.
    const seen = await until(bob, 'bob to decode alice', (v) => {
      const video = videoFrom('alice')(v);
      return video !== undefined && video.framesDecoded > 0 && video.frameWidth > 0;
    });
    const video = videoFrom('alice')(seen);
    assert.ok(video);
    assert.equal(typeof video.totalFreezesDuration, 'number');
    assert.ok(video.frameHeight > 0);
    assert.equal(video.pin, 'auto');

    // Alice's own layers: three with their flags and bytes when the node took simulcast,
    // none when it did not (then the camera went out as one layer and still reached bob).
    const aliceView = await until(alice, 'alice to send every active layer', (v) =>
      v.localLayers.every((l) => !l.active || l.bytesSent > 0),
    );
    assert.ok(
      aliceView.localLayers.length === 0 ||
        aliceView.localLayers.map((l) => l.rid).join() === 'q,h,f',
      JSON.stringify(aliceView.localLayers),
    );

    // Bob's page told the node the tile's size in device pixels and that it is visible, once
    // the subscription existed (after his subscriber answer).
    const aliceSid = video.participantSid;
    const size = await renderedSize(bob, aliceSid);
    const shown = await waitUntil('bob to send the tile size', () => {
      const s = lastSettings(bobLog, video.trackId);
      return s && s.visible === true && Math.abs(Number(s.width) - size.width) <= 1 ? s : undefined;
    });
    assert.ok(Math.abs(Number(shown.height) - size.height) <= 1, JSON.stringify(shown));
    assert.equal(shown.pin, 'auto');
    const answered = bobLog.sent.findIndex((m) => m.type === 'subscriber.answer');
    const first = bobLog.sent.findIndex((m) => m.type === 'subscription.settings');
    assert.ok(answered >= 0 && first > answered, 'settings go out after the subscriber answer');
    const hook = await until(bob, 'the hook to show the sent settings', (v) =>
      Boolean(videoFrom('alice')(v)?.settings?.visible),
    );
    assert.equal(videoFrom('alice')(hook)?.settings?.width, shown.width);

    // A collapsed tile is not visible; shown again, it is (each change sent once).
    await collapseTile(bob, aliceSid, true);
    await waitUntil('bob to report the collapsed tile', () =>
      lastSettings(bobLog, video.trackId)?.visible === false ? true : undefined,
    );
    await collapseTile(bob, aliceSid, false);
    await waitUntil('bob to report the tile shown again', () =>
      lastSettings(bobLog, video.trackId)?.visible === true ? true : undefined,
    );
    markPassed();
  });

  test('a tile pin moves the video: low decodes the lowest layer, high a higher one again', {
    timeout: 180_000,
  }, async (t) => {
    const room = `e2e-pin-${randomBytes(4).toString('hex')}`;
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [node]);
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    const bobLog = recordSignalling(bob);
    await alice.goto(pageUrl(room, 'alice'));
    await bob.goto(pageUrl(room, 'bob'));

    // Bob's tile needs h at most, so dynacast may pause f before Chrome's estimate ever
    // covered it (on a busy machine it does): only q, the layer the low pin asks for, is awaited.
    const sending = await until(
      alice,
      'alice to send her lowest layer',
      (v) => v.localLayers.length === 3 && (v.localLayers[0]?.bytesSent ?? 0) > 0,
    );
    const low = sending.localLayers[0];
    assert.equal(low?.rid, 'q');
    const seen = await until(bob, 'bob to decode alice with a pin control', (v) => {
      const video = videoFrom('alice')(v);
      return Boolean(video?.simulcast && video.framesDecoded > 0 && video.rid !== null);
    });
    const video = videoFrom('alice')(seen);
    assert.ok(video);
    const pins = bob.locator(`.tile[data-key="${video.participantSid}"] .pin`);
    await pins.waitFor({ state: 'visible', timeout: MEDIA_TIMEOUT_MS });

    const press = async (pin: 'low' | 'high' | 'auto') => {
      await pins.locator(`button[data-pin="${pin}"]`).click();
      const sent = await waitUntil(`bob to send pin ${pin}`, () => {
        const s = lastSettings(bobLog, video.trackId);
        return s?.pin === pin ? s : undefined;
      });
      assert.equal(sent.visible, true);
      assert.equal(
        await pins.locator(`button[data-pin="${pin}"]`).getAttribute('aria-pressed'),
        'true',
      );
    };
    await press('low');
    await until(bob, 'bob to receive and decode the low layer', (v) => {
      const got = videoFrom('alice')(v);
      return (
        got?.pin === 'low' && got.rid === 'q' && got.frameWidth > 0 && got.frameWidth <= low.width
      );
    });
    await press('high');
    await until(bob, 'bob to receive and decode a higher layer again', (v) => {
      const got = videoFrom('alice')(v);
      return (
        got?.pin === 'high' && got.rid !== 'q' && got.rid !== null && got.frameWidth > low.width
      );
    });
    await press('auto');
    markPassed();
  });
});
