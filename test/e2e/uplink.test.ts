/**
 * A real Chromium publisher's send-side bandwidth estimate grows on the node's transport-cc
 * feedback (issue 14 point 4, WERIFT-NOTES pitfall 3: with werift's own feedback Chrome's
 * estimate collapsed to ~100 kbit/s).
 *
 * The page publishes a 1280x720 canvas full of moving colour (so that the encoder wants far
 * more than Chrome's 300 kbit/s start) on a bare RTCPeerConnection; the test does the
 * signalling over a raw websocket. Everything observed comes from the publisher's getStats():
 * the selected candidate pair's `availableOutgoingBitrate` (Chrome's estimate) and the
 * outbound-rtp bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openBrowser } from '../helpers/browser.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { joinRaw } from '../helpers/rooms.js';
import { waitUntil } from '../helpers/wait.js';
import type { RawClient } from '../helpers/ws.js';

/** The node's REMB: SFU_MAX_PUBLISH_BITRATE's default. */
const REMB_CAP = 3_000_000;
/** Well inside the REMB cap. */
const TARGET_ESTIMATE = 1_500_000;
/**
 * Samples (1 s apart) the estimate must hold: with werift's feedback it spiked to the cap for
 * a second after the first probe, then fell to ~100 kbit/s.
 */
const HOLD_SAMPLES = 10;
/** What the publisher sends once the estimate is there: over 3x what werift's feedback allowed. */
const FOLLOWING_BITRATE = 400_000;
/** The estimate has to get there within this (Chrome starts at 300 kbit/s; ~5-10 s here). */
const ESTIMATE_DEADLINE_MS = 30_000;

/**
 * The page side, as plain JavaScript (functions evaluated in the page must not be transpiled
 * into helpers the page does not have). `window.__uplink.offer(simulcast)` starts the canvas
 * and returns the offer once ICE gathering is done; `answer(sdp)` applies the node's answer;
 * `stats()` reads the estimate and the outbound streams.
 */
const PAGE_SCRIPT = `
window.__uplink = {
  async offer(simulcast) {
    const canvas = document.createElement('canvas');
    canvas.width = 1280;
    canvas.height = 720;
    document.body.appendChild(canvas);
    const ctx = canvas.getContext('2d');
    const draw = () => {
      for (let i = 0; i < 60; i++) {
        ctx.fillStyle = 'hsl(' + Math.floor(Math.random() * 360) + ',80%,50%)';
        ctx.fillRect(Math.random() * 1280, Math.random() * 720, 20 + Math.random() * 60, 20 + Math.random() * 60);
      }
    };
    draw();
    window.__draw = setInterval(draw, 33);
    const stream = canvas.captureStream(30);
    const track = stream.getVideoTracks()[0];
    const pc = new RTCPeerConnection();
    window.__pc = pc;
    const init = { direction: 'sendonly', streams: [stream] };
    if (simulcast) {
      init.sendEncodings = [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
      ];
    }
    const transceiver = pc.addTransceiver(track, init);
    await pc.setLocalDescription();
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => {
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
      });
    }
    return { sdp: pc.localDescription.sdp, mid: transceiver.mid };
  },
  async answer(sdp) {
    await window.__pc.setRemoteDescription({ type: 'answer', sdp });
  },
  async stats() {
    const report = await window.__pc.getStats();
    let pairId;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    let available = 0;
    const outbound = [];
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.id === pairId) available = s.availableOutgoingBitrate || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        outbound.push({
          rid: s.rid || '',
          bytesSent: s.bytesSent || 0,
          frameWidth: s.frameWidth || 0,
          limitation: s.qualityLimitationReason || '',
          targetBitrate: s.targetBitrate || 0,
        });
      }
    });
    outbound.sort((a, b) => a.rid.localeCompare(b.rid));
    return { at: performance.now(), state: window.__pc.connectionState, available, outbound };
  },
};
`;

interface Outbound {
  rid: string;
  bytesSent: number;
  frameWidth: number;
  /** `qualityLimitationReason`: why the encoder sends less than it would like. */
  limitation: string;
  /** The encoder's target, bit/s. */
  targetBitrate: number;
}
interface PublisherStats {
  at: number;
  state: string;
  available: number;
  outbound: Outbound[];
}

const stats = (page: Page) => page.evaluate('window.__uplink.stats()') as Promise<PublisherStats>;

/** Joins `identity` and publishes the page's canvas through the node; returns when connected. */
async function publishCanvas(
  page: Page,
  node: NodeProcess,
  room: string,
  clients: RawClient[],
  simulcast: boolean,
): Promise<string> {
  const { client } = await joinRaw(node.url, room, 'canvas', clients);
  await page.goto(`${node.url}/healthz`);
  await page.addScriptTag({ content: PAGE_SCRIPT });
  const offer = (await page.evaluate(`window.__uplink.offer(${simulcast})`)) as {
    sdp: string;
    mid: string;
  };
  client.send({
    type: 'publish',
    id: 'p',
    sdp: offer.sdp,
    tracks: [
      {
        mid: offer.mid,
        kind: 'video',
        source: 'camera',
        ...(simulcast
          ? {
              layers: [
                { rid: 'q', width: 320, height: 180, maxBitrate: 150_000 },
                { rid: 'h', width: 640, height: 360, maxBitrate: 500_000 },
                { rid: 'f', width: 1280, height: 720, maxBitrate: 1_500_000 },
              ],
            }
          : {}),
      },
    ],
  });
  const reply = await client.waitFor(
    (m) => (m.type === 'publish.answer' || m.type === 'error') && m.ref === 'p',
    15_000,
  );
  if (reply.type !== 'publish.answer') throw new Error(`publish failed: ${JSON.stringify(reply)}`);
  await page.evaluate(`window.__uplink.answer(${JSON.stringify(reply.sdp)})`);
  await waitUntil(
    'the publisher PeerConnection to connect',
    async () => ((await stats(page)).state === 'connected' ? true : undefined),
    15_000,
    100,
  );
  return reply.sdp;
}

/** Samples the publisher's stats every second until `done` says yes or the deadline passes. */
async function watch(
  page: Page,
  what: string,
  done: (history: PublisherStats[]) => boolean,
  timeoutMs: number,
): Promise<PublisherStats[]> {
  const history: PublisherStats[] = [];
  const line = (s: PublisherStats) =>
    `${Math.round(s.available / 1000)} kbit/s [${s.outbound.map((o) => `${o.rid || '-'}:${o.frameWidth}px ${o.bytesSent}B target ${Math.round(o.targetBitrate / 1000)}k ${o.limitation}`).join(' ')}]`;
  await waitUntil(
    what,
    async () => {
      history.push(await stats(page));
      return done(history) ? true : undefined;
    },
    timeoutMs,
    1_000,
    () => `estimate over time: ${history.map(line).join(', ')}`,
  );
  console.log(`${what}: ${history.map(line).join(', ')}`);
  return history;
}

/** Bits per second of `rid` between the last two samples that are `span` samples apart. */
function bitrate(history: PublisherStats[], rid: string, span = 3): number {
  const last = history.at(-1);
  const first = history.at(-1 - span);
  if (!last || !first) return 0;
  const bytes = (s: PublisherStats) => s.outbound.find((o) => o.rid === rid)?.bytesSent ?? 0;
  return ((bytes(last) - bytes(first)) * 8 * 1000) / (last.at - first.at);
}

describe('congestion feedback toward a Chromium publisher', () => {
  let node: NodeProcess;
  const clients: RawClient[] = [];

  before(async () => {
    node = await startNode();
  });
  after(async () => {
    for (const c of clients) c.close();
    await node?.stop();
  });

  test('the publisher estimate climbs past 1.5 Mbit/s on loopback and its bitrate follows', {
    timeout: 90_000,
  }, async (t) => {
    const browser = await openBrowser({ t });
    const page = await browser.newPage();
    const room = `uplink-${randomBytes(4).toString('hex')}`;
    const answer = await publishCanvas(page, node, room, clients, false);
    assert.match(answer, /a=extmap:\d+ [^\r\n]*transport-wide-cc/, 'transport-cc negotiated');
    assert.match(answer, /a=rtcp-fb:\d+ transport-cc/);

    const history = await watch(
      page,
      `the estimate to stay at ${TARGET_ESTIMATE} bit/s or more for ${HOLD_SAMPLES} s`,
      (h) =>
        h.length >= HOLD_SAMPLES &&
        h.slice(-HOLD_SAMPLES).every((s) => s.available >= TARGET_ESTIMATE),
      ESTIMATE_DEADLINE_MS,
    );
    // The REMB still caps it: Chrome sends at most the smaller of its estimate and the REMB.
    const estimate = history.at(-1)?.available ?? 0;
    assert.ok(estimate <= REMB_CAP * 1.02, `estimate ${estimate} bit/s above the REMB cap`);
    // The encoder follows the estimate: the stream carries several times what werift's
    // feedback let through (its estimate collapsed to 36-99 kbit/s, the encoder's target to
    // 30-120 kbit/s). Not the estimate itself: on a CPU-starved machine Chrome's pacer and
    // encoder hold the target well below it (seen: 1.66 Mbit/s estimated, 500-600 kbit/s
    // target, "bandwidth" limitation, with two other Chromium tests running).
    const sending = await waitUntil(
      'the outbound bitrate to follow the estimate',
      async () => {
        history.push(await stats(page));
        const rate = bitrate(history, '');
        return rate >= FOLLOWING_BITRATE ? rate : undefined;
      },
      20_000,
      1_000,
      () => `last outbound ${Math.round(bitrate(history, ''))} bit/s`,
    );
    console.log(`outbound bitrate ${Math.round(sending / 1000)} kbit/s`);
    assert.ok(
      (await metricValue(node.url, 'sfu_publisher_feedback_packets_total')) > 0,
      'feedback counted',
    );
  });

  test('a simulcast publisher sends all three layers', { timeout: 90_000 }, async (t) => {
    const browser = await openBrowser({ t });
    const page = await browser.newPage();
    const room = `uplink-sim-${randomBytes(4).toString('hex')}`;
    await publishCanvas(page, node, room, clients, true);
    // Chrome sends a layer only when its estimate covers it and the ones below: all three
    // (150 + 500 + 1500 kbit/s caps) need the estimate to grow to about 2 Mbit/s, and to stay
    // there (werift's feedback let the top layer start, then starved it).
    const history = await watch(
      page,
      'all three layers to send',
      (h) =>
        h.length >= HOLD_SAMPLES &&
        ['q', 'h', 'f'].every((rid) => bitrate(h, rid) > 0) &&
        bitrate(h, 'f') >= 500_000,
      ESTIMATE_DEADLINE_MS,
    );
    const widths = history.at(-1)?.outbound.map((o) => [o.rid, o.frameWidth]);
    assert.deepEqual(
      widths,
      [
        ['f', 1280],
        ['h', 640],
        ['q', 320],
      ],
      'each layer at its size',
    );
  });
});
