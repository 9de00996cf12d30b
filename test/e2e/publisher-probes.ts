/**
 * Probes of a publishing demo page's send side, run inside the page (strings, so that tsx
 * leaves the page functions alone: see page-view.ts `view`): Chrome's estimate and per-layer
 * stats, when the top layer `f` turns active and first sends, when the page sends its join,
 * and the dynacast layer requests it receives. The dynacast e2e test times its bounds by them.
 */
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';

/**
 * A publishing page's send side for failure messages: Chrome's estimate (the selected pair's
 * availableOutgoingBitrate, kbit/s) and per layer its bytes (of them resent), frames, width and
 * quality limitation.
 */
export function sendSide(page: Page): Promise<string> {
  return page.evaluate(`(async () => {
    const pc = globalThis.__sfu && globalThis.__sfu.publisherPc;
    if (!pc) return 'no publisher pc';
    const report = await pc.getStats();
    const out = [];
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
        out.push('estimate ' + Math.round(s.availableOutgoingBitrate / 1000) + ' kbit/s');
      if (s.type === 'outbound-rtp' && s.kind === 'video')
        out.push(s.rid + ': ' + s.bytesSent + ' B (' + s.retransmittedBytesSent + ' resent) ' + s.framesEncoded + ' frames ' + (s.frameWidth ?? 0) + ' px ' + s.qualityLimitationReason);
    });
    return out.join(', ');
  })()`);
}

/**
 * Sets the camera sender's degradationPreference to maintain-resolution. Chrome's default
 * (balanced) answers CPU overuse by scaling the input down, and a simulcast encoder whose
 * input is smaller than 1280x720 has fewer layers: with both cores busy it never sent f at all
 * (0 bytes in 30 s), dynacast or not. This test is about dynacast, not about this machine's
 * CPU, so the encoder drops frames instead.
 */
export async function keepResolution(page: Page): Promise<void> {
  await page.evaluate(`(async () => {
    const pc = globalThis.__sfu.publisherPc;
    const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'video');
    const parameters = sender.getParameters();
    parameters.degradationPreference = 'maintain-resolution';
    await sender.setParameters(parameters);
  })()`);
}

/** Chrome's send-side estimate (the selected pair's availableOutgoingBitrate), bits/s. */
export function estimateBps(page: Page): Promise<number> {
  return page.evaluate(`(async () => {
    const report = await globalThis.__sfu.publisherPc.getStats();
    let bps = 0;
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
        bps = s.availableOutgoingBitrate;
    });
    return bps;
  })()`);
}

export interface TopLayerWatch {
  /** f's bytesSent when the watch started. */
  baseline: number | null;
  /** When f's bytesSent first grew past the baseline (wall clock, ms). */
  grewAt: number | null;
  /** When the page first had f active. */
  activeAt: number | null;
}

/**
 * Starts a poller inside `page` (every 100 ms: its publisher's getStats and the hook's layer
 * flags) that records when f's bytes first grow past what they were when it started and when
 * f is first active. Returns a reader. A string, so that tsx leaves the page function alone
 * (see page-view.ts `view`).
 */
export async function watchTopLayer(page: Page): Promise<() => Promise<TopLayerWatch>> {
  const key = `__topLayer${randomBytes(3).toString('hex')}`;
  await page.evaluate(`(() => {
    const record = { baseline: null, grewAt: null, activeAt: null };
    globalThis[${JSON.stringify(key)}] = record;
    const now = () => performance.timeOrigin + performance.now();
    let busy = false;
    const timer = setInterval(() => {
      const sfu = globalThis.__sfu;
      if (!sfu || !sfu.publisherPc || busy) return;
      if (record.activeAt === null) {
        const f = sfu.localLayers().find((l) => l.rid === 'f');
        if (f && f.active) record.activeAt = now();
      }
      busy = true;
      sfu.publisherPc.getStats().then((report) => {
        report.forEach((s) => {
          if (s.type !== 'outbound-rtp' || s.rid !== 'f') return;
          const bytes = s.bytesSent ?? 0;
          if (record.baseline === null) record.baseline = bytes;
          else if (bytes > record.baseline && record.grewAt === null) record.grewAt = now();
        });
        if (record.grewAt !== null && record.activeAt !== null) clearInterval(timer);
      }).catch(() => {}).finally(() => { busy = false; });
    }, 100);
  })()`);
  return () => page.evaluate(`globalThis[${JSON.stringify(key)}]`) as Promise<TopLayerWatch>;
}

/** Call before `page.goto`: records when the page sends its `join` request (wall clock). */
export async function watchJoinSent(page: Page): Promise<() => Promise<number | null>> {
  await page.addInitScript(`(() => {
    const send = WebSocket.prototype.send;
    globalThis.__joinSentAt = null;
    WebSocket.prototype.send = function (data) {
      if (globalThis.__joinSentAt === null && typeof data === 'string' && data.includes('"type":"join"'))
        globalThis.__joinSentAt = performance.timeOrigin + performance.now();
      return send.call(this, data);
    };
  })()`);
  return () => page.evaluate('globalThis.__joinSentAt') as Promise<number | null>;
}

/**
 * Call before `page.goto`: records in the page every `publication.layers` it receives, with
 * when (wall clock, at the websocket's message event). Returns a reader.
 */
export async function recordLayerRequests(
  page: Page,
): Promise<() => Promise<{ at: number; active: string[] }[]>> {
  await page.addInitScript(`(() => {
    const log = [];
    globalThis.__layerRequests = log;
    const Native = WebSocket;
    globalThis.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => {
          const at = performance.timeOrigin + performance.now();
          if (typeof event.data !== 'string' || !event.data.includes('publication.layers')) return;
          try {
            const m = JSON.parse(event.data);
            if (m.type === 'publication.layers') log.push({ at, active: m.active });
          } catch {}
        });
      }
    };
  })()`);
  return () =>
    page.evaluate('globalThis.__layerRequests') as Promise<{ at: number; active: string[] }[]>;
}
