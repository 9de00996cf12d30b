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

export interface PageView {
  state: string;
  sessionId: string | null;
  /** Where `/v1/route` sent the page, from the hook and from the header. */
  nodeId: string | null;
  region: string | null;
  nodeLabel: string | null;
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
  document: { getElementById(id: string): { textContent: string | null } | null };
  __sfu?: {
    state: string;
    sessionId: string | null;
    nodeId: string | null;
    region: string | null;
    participants(): string[];
    subscribedTracks(): { mid: string; participantSid: string; identity: string }[];
    subscriberPc: { getStats(): Promise<{ forEach(cb: (s: StatsLike) => void): void }> } | null;
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
      };
    }
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
      nodeId: sfu.nodeId,
      region: sfu.region,
      nodeLabel:
        (globalThis as unknown as PageGlobals).document.getElementById('node-label')?.textContent ??
        null,
      participants: sfu.participants(),
      inbound,
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
