/**
 * WHIP and WHEP across a relay, with independent WebRTC stacks on both ends. Two nodes, `ams`
 * (the default region, where loopback callers are routed) and `hcm`, share a real Redis.
 *
 * 1. The directory and hcm redirect a WHIP POST (307) to ams, the routed node. GStreamer's
 *    webrtcbin (scripts/whip-publish.py) POSTs its offer to hcm's WHIP endpoint, follows the
 *    redirect and publishes on ams; a Chromium demo page on
 *    hcm sees it join and decodes its video and hears its audio, which only the relay link
 *    ams -> hcm carries. The script's DELETE ends the session: the page sees it leave, ams
 *    counts no participant, and a second DELETE is a coded 404.
 * 2. A werift bot publishes simulcast video on hcm; Chromium's WHEP player page served by ams
 *    decodes it through the relay hcm -> ams, and its Stop (DELETE) ends the session.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import type { Page } from 'playwright-core';
import { BotPool } from '../helpers/bots.js';
import { openBrowser } from '../helpers/browser.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { waitForEqual, waitUntil } from '../helpers/wait.js';
import { startWhipPublisher } from '../helpers/whip-publisher.js';
import { receivesFrom, reportOnFailure, until } from './page-view.js';
import { buildDemoPage, waitForRoute } from './setup.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const MEDIA_TIMEOUT_MS = 30_000;
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

/** What the WHEP player page decodes (its `window.whep` hook and its PC's getStats). */
interface PlayerView {
  state: string;
  error: string | null;
  session: string | null;
  framesDecoded: number;
  audioPackets: number;
}

function playerView(page: Page): Promise<PlayerView> {
  return page.evaluate(async () => {
    type Stats = { type: string; kind?: string; framesDecoded?: number; packetsReceived?: number };
    const whep = (
      globalThis as unknown as {
        whep?: {
          state: string;
          error?: string;
          session?: string;
          pc?: { getStats(): Promise<{ forEach(cb: (s: Stats) => void): void }> };
        };
      }
    ).whep;
    const view = {
      state: whep?.state ?? 'no-hook',
      error: whep?.error ?? null,
      session: whep?.session ?? null,
      framesDecoded: 0,
      audioPackets: 0,
    };
    const report = await whep?.pc?.getStats();
    report?.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') view.framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === 'audio') view.audioPackets += s.packetsReceived ?? 0;
    });
    return view;
  });
}

describe('WHIP and WHEP across a relay link', () => {
  let redis: RedisServer;
  let ams: NodeProcess;
  let hcm: NodeProcess;
  let directory: NodeProcess;
  const bots = new BotPool();

  before(async () => {
    buildDemoPage();
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      SFU_REGISTRY_TTL_MS: String(TTL_MS),
      SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
      SFU_DEFAULT_REGION: 'ams',
    };
    [ams, hcm, directory] = await Promise.all([
      startNode({ nodeId: 'node-ams', region: 'ams', env }),
      startNode({ nodeId: 'node-hcm', region: 'hcm', env }),
      startNode({ role: 'directory', env }),
    ]);
  });

  after(async () => {
    await bots.closeAll();
    await Promise.allSettled([ams?.stop(), hcm?.stop(), directory?.stop()]);
    await redis?.stop();
  });

  /** Waits until `via` routes a pin of `peer`'s region to `peer` (registry membership). */
  const waitForPeer = (via: NodeProcess, peer: NodeProcess, room: string) =>
    waitForRoute(
      via,
      room,
      { region: peer.region },
      (response, body) =>
        response.ok && (JSON.parse(body) as { nodeId?: string }).nodeId === peer.nodeId,
      `${via.nodeId} never routed region ${peer.region} to ${peer.nodeId}`,
    );

  test('GStreamer publishes by WHIP on ams; a Chromium page on hcm decodes it; DELETE ends it', {
    timeout: 120_000,
  }, async (t) => {
    const room = `whip-${randomBytes(4).toString('hex')}`;
    await waitForPeer(hcm, ams, room);
    await waitForPeer(ams, hcm, room);
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [ams, hcm]);
    const page = await browser.newPage();
    await page.goto(
      `${hcm.url}/?${new URLSearchParams({ room, name: 'viewer', autojoin: '1', region: 'hcm' })}`,
    );
    const joined = await until(page, 'the page to join on hcm', (v) => v.state === 'joined');
    assert.equal(joined.nodeId, hcm.nodeId);

    // The directory and hcm send a WHIP POST to ams, where loopback callers are routed; the
    // 307 keeps the method and body.
    const token = await tokens.mint({ room, identity: 'gst', name: 'GStreamer' });
    await waitForPeer(directory, ams, room);
    for (const via of [directory, hcm]) {
      const redirect = await fetch(`${via.url}/v1/whip/${room}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
        body: 'v=0',
      });
      assert.equal(redirect.status, 307, `${via.nodeId}: ${await redirect.text()}`);
      assert.equal(
        redirect.headers.get('location'),
        `${ams.url}/v1/whip/${room}?node=${ams.nodeId}`,
      );
    }
    // The publisher is given hcm's endpoint and follows the 307 to ams.
    const publisher = startWhipPublisher({ url: `${hcm.url}/v1/whip/${room}`, token });
    t.after(() => publisher.stop());
    const created = await publisher.waitFor('create its session', (e) => e.event !== 'connection');
    assert.equal(created.event, 'created', JSON.stringify(created));
    const location = String(created.location);
    assert.ok(location.startsWith(`${ams.url}/v1/sessions/`), `session at ${location}`);
    await publisher.waitFor('connect', (e) => e.event === 'connection' && e.state === 'connected');

    // Others see it join, and its media crosses the relay: decoded video, received audio.
    await until(page, 'the page to see gst join', (v) => v.participants.includes('gst'));
    await until(page, 'the page to receive gst', receivesFrom('gst'), MEDIA_TIMEOUT_MS);
    assert.equal(await metricValue(ams.url, 'sfu_http_sessions_total', { kind: 'whip' }), 1);
    assert.equal(await metricValue(ams.url, 'sfu_participants'), 1);
    for (const kind of ['video', 'audio']) {
      const relayed = await metricValue(hcm.url, 'sfu_packets_total', {
        direction: 'in',
        path: 'relay',
        kind,
      });
      assert.ok(relayed > 0, `hcm received no ${kind} packets over the relay`);
    }

    // DELETE (the script's, on SIGTERM) ends the session; everyone sees the participant leave.
    assert.equal(await publisher.stop(), 0);
    const deleted = publisher.events.find((e) => e.event === 'deleted');
    assert.equal(deleted?.status, 200, JSON.stringify(publisher.events));
    await until(page, 'the page to see gst leave', (v) => !v.participants.includes('gst'));
    await waitForEqual(
      'ams to count no participant',
      () => metricValue(ams.url, 'sfu_participants'),
      0,
    );
    const again = await fetch(location, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    markPassed();
  });

  test('a Chromium WHEP player on ams decodes a bot publishing on hcm', {
    timeout: 120_000,
  }, async (t) => {
    const room = `whep-${randomBytes(4).toString('hex')}`;
    await waitForPeer(ams, hcm, room);
    await bots.connect({
      url: hcm.url,
      route: false,
      room,
      identity: 'bot',
      publish: { video: true, audio: true, simulcast: true },
      subscribe: false,
    });
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [ams, hcm]);
    const page = await browser.newPage();
    const token = await tokens.mint({ room, identity: 'whep-viewer', name: 'WHEP' });
    await page.goto(`${ams.url}/whep#${new URLSearchParams({ room, token, participant: 'bot' })}`);
    const view = await waitUntil(
      'the WHEP player to decode the bot',
      async () => {
        const v = await playerView(page);
        if (v.state === 'failed') throw new Error(`the player failed: ${v.error}`);
        return v.framesDecoded > 10 && v.audioPackets > 0 ? v : undefined;
      },
      MEDIA_TIMEOUT_MS,
      250,
      () => browser.logs.slice(-5).join('\n'),
    );
    assert.ok(view.session?.startsWith(`${ams.url}/v1/sessions/`), `session at ${view.session}`);
    assert.equal(await metricValue(ams.url, 'sfu_http_sessions_total', { kind: 'whep' }), 1);
    const relayed = await metricValue(ams.url, 'sfu_packets_total', {
      direction: 'in',
      path: 'relay',
      kind: 'video',
    });
    assert.ok(relayed > 0, 'ams received no video over the relay');

    // Stop sends DELETE: the viewer leaves ams.
    await page.click('#stop');
    await waitForEqual(
      'ams to count no participant',
      () => metricValue(ams.url, 'sfu_participants'),
      0,
    );
    markPassed();
  });
});
