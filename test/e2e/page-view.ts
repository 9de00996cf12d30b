/**
 * Reading the demo page from end-to-end tests: its `window.__sfu` hook, the node label in the
 * header, and the inbound streams of its subscriber PeerConnection, polled until a condition.
 */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

export const MEDIA_TIMEOUT_MS = 30_000;

/** One inbound RTP stream of a page's subscriber PeerConnection, with whom it comes from. */
export interface Inbound {
  id: string;
  kind: string;
  mid: string | null;
  framesDecoded: number;
  packetsReceived: number;
  participantSid: string | null;
  identity: string | null;
}

/** A remote video as the page shows it: its tile's state and its decoding (getStats). */
export interface RemoteVideo {
  identity: string;
  participantSid: string;
  trackId: string;
  mid: string;
  /** Published with simulcast layers: the tile has a pin control. */
  simulcast: boolean;
  pin: string;
  /** The received layer's rid from `subscription.layer` (null: none said, or paused). */
  rid: string | null;
  /** The last `subscription.settings` the page sent for it. */
  settings: { visible: boolean; width: number; height: number; pin: string } | null;
  framesDecoded: number;
  totalFreezesDuration: number;
  frameWidth: number;
  frameHeight: number;
}

/** One layer of the page's own simulcast camera: the encoder's flag and what it sent. */
export interface LocalLayer {
  rid: string;
  active: boolean;
  /** Declared in the publish request. */
  width: number;
  bytesSent: number;
  framesEncoded: number;
  frameWidth: number;
}

export interface PageView {
  state: string;
  sessionId: string | null;
  /** Where `/v1/route` sent the page, from the hook and from the header. */
  nodeId: string | null;
  region: string | null;
  nodeLabel: string | null;
  participants: string[];
  inbound: Inbound[];
  remoteVideos: RemoteVideo[];
  /** Empty when the camera is sent as one layer. */
  localLayers: LocalLayer[];
}

/** The page's globals as the evaluated functions see them (the test has no DOM typings). */
interface StatsLike {
  type: string;
  id: string;
  [field: string]: unknown;
}
interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null };
  __sfu?: {
    state: string;
    sessionId: string | null;
    nodeId: string | null;
    region: string | null;
    participants(): string[];
    subscribedTracks(): { mid: string; participantSid: string; identity: string }[];
    subscriberPc: { getStats(): Promise<{ forEach(cb: (s: StatsLike) => void): void }> } | null;
    publisherPc: { getStats(): Promise<{ forEach(cb: (s: StatsLike) => void): void }> } | null;
    remoteVideos?(): {
      identity: string;
      participantSid: string;
      trackId: string;
      mid: string;
      simulcast: boolean;
      pin: string;
      layer: { rid: string | null } | null;
      settings: RemoteVideo['settings'];
    }[];
    localLayers?(): { rid: string; active: boolean; width: number }[];
  };
}

/**
 * Reads the page's state and inbound streams. The function runs in the page, so it must not
 * declare named functions (tsx would wrap them in a helper the page does not have).
 */
export function view(page: Page): Promise<PageView> {
  return page.evaluate(async () => {
    const sfu = (globalThis as unknown as PageGlobals).__sfu;
    if (!sfu) {
      return {
        state: 'no-hook',
        sessionId: null,
        nodeId: null,
        region: null,
        nodeLabel: null,
        participants: [],
        inbound: [],
        remoteVideos: [],
        localLayers: [],
      };
    }
    const inbound: Inbound[] = [];
    const decoding = new Map<string, StatsLike>();
    const sending = new Map<string, StatsLike>();
    const pc = sfu.subscriberPc;
    if (pc) {
      const tracks = sfu.subscribedTracks();
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const mid = typeof s.mid === 'string' ? s.mid : null;
        if (mid !== null && s.kind === 'video') decoding.set(mid, s);
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
    if (sfu.publisherPc) {
      const report = await sfu.publisherPc.getStats();
      report.forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video' && typeof s.rid === 'string')
          sending.set(s.rid, s);
      });
    }
    const remoteVideos: RemoteVideo[] = (sfu.remoteVideos?.() ?? []).map((v) => {
      const s = decoding.get(v.mid);
      return {
        identity: v.identity,
        participantSid: v.participantSid,
        trackId: v.trackId,
        mid: v.mid,
        simulcast: v.simulcast,
        pin: v.pin,
        rid: v.layer?.rid ?? null,
        settings: v.settings,
        framesDecoded: Number(s?.framesDecoded ?? 0),
        totalFreezesDuration: Number(s?.totalFreezesDuration ?? 0),
        frameWidth: Number(s?.frameWidth ?? 0),
        frameHeight: Number(s?.frameHeight ?? 0),
      };
    });
    const localLayers: LocalLayer[] = (sfu.localLayers?.() ?? []).map((l) => ({
      rid: l.rid,
      active: l.active,
      width: l.width,
      bytesSent: Number(sending.get(l.rid)?.bytesSent ?? 0),
      framesEncoded: Number(sending.get(l.rid)?.framesEncoded ?? 0),
      frameWidth: Number(sending.get(l.rid)?.frameWidth ?? 0),
    }));
    return {
      state: sfu.state,
      sessionId: sfu.sessionId,
      nodeId: sfu.nodeId,
      region: sfu.region,
      nodeLabel:
        (globalThis as unknown as PageGlobals).document.getElementById('node-label')?.textContent ??
        null,
      participants: sfu.participants(),
      inbound,
      remoteVideos,
      localLayers,
    };
  });
}

/** Polls the page until `check` returns true; on timeout fails with the last view. */
export async function until(
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

export const receivesFrom =
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

/** When a page joined and first decoded someone's video, in ms on the page's clock. */
export interface FirstFrameTiming {
  /** When `window.__sfu.state` was first seen `joined` (ms after the page's navigation). */
  joinedAt: number | null;
  /** When the subscriber first had a decoded frame of `identity`'s video (same clock). */
  firstFrameAt: number | null;
}

/**
 * Call before `page.goto`: polls the page's hook and getStats() every 20 ms from inside the
 * page until `identity`'s video has a decoded frame, and returns a reader of the two moments.
 * The script is a string so that tsx leaves it alone (see `view`).
 */
export async function watchFirstFrame(
  page: Page,
  identity: string,
): Promise<() => Promise<FirstFrameTiming>> {
  await page.addInitScript(`(() => {
    const identity = ${JSON.stringify(identity)};
    const timing = { joinedAt: null, firstFrameAt: null };
    Object.defineProperty(globalThis, '__firstFrame', { value: timing });
    let busy = false;
    const timer = setInterval(() => {
      const sfu = globalThis.__sfu;
      if (!sfu || busy) return;
      if (timing.joinedAt === null) {
        if (sfu.state !== 'joined') return;
        timing.joinedAt = performance.now();
      }
      const pc = sfu.subscriberPc;
      if (!pc) return;
      const mids = new Set(
        sfu.subscribedTracks().filter((t) => t.identity === identity).map((t) => t.mid),
      );
      busy = true;
      pc.getStats()
        .then((report) => {
          report.forEach((s) => {
            if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !mids.has(s.mid)) return;
            if ((s.framesDecoded ?? 0) > 0 && timing.firstFrameAt === null) {
              timing.firstFrameAt = performance.now();
            }
          });
          if (timing.firstFrameAt !== null) clearInterval(timer);
        })
        .catch(() => {})
        .finally(() => {
          busy = false;
        });
    }, 20);
  })();`);
  return () =>
    page.evaluate(
      () =>
        (globalThis as unknown as { __firstFrame?: FirstFrameTiming }).__firstFrame ?? {
          joinedAt: null,
          firstFrameAt: null,
        },
    );
}

/**
 * When the test fails, prints the browser console and the nodes' warnings (they say why media
 * did not flow far better than a timeout does). Call the returned function when the test passed.
 */
export function reportOnFailure(
  t: { after(fn: () => void): void },
  browser: { logs: readonly string[] },
  nodes: readonly { nodeId: string; logs: readonly Record<string, unknown>[] }[],
): () => void {
  let passed = false;
  t.after(() => {
    if (passed) return;
    process.stderr.write(`browser console:\n${browser.logs.join('\n')}\n`);
    for (const n of nodes) {
      const warnings = n.logs.filter((entry) => Number(entry.level) >= 40);
      process.stderr.write(
        `${n.nodeId} warnings:\n${warnings.map((e) => JSON.stringify(e)).join('\n')}\n`,
      );
    }
  });
  return () => {
    passed = true;
  };
}
