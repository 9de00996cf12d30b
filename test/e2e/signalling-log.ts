/**
 * The signalling messages a demo page exchanges with its node, read off the page's real
 * websocket (Playwright's `websocket` event): what the page asked for, as the node got it.
 */
import type { Page } from 'playwright-core';

export interface SignalFrame {
  type: string;
  [field: string]: unknown;
}

export interface SignallingLog {
  /** Messages the page sent, in order (pings left out). */
  readonly sent: SignalFrame[];
  /** Messages the page received, in order (pongs left out). */
  readonly received: SignalFrame[];
}

function parse(payload: string | Buffer): SignalFrame | null {
  try {
    const value: unknown = JSON.parse(String(payload));
    if (typeof value === 'object' && value !== null && 'type' in value) {
      return value as SignalFrame;
    }
  } catch {
    // Not JSON: not a signalling message (the protocol only has JSON frames).
  }
  return null;
}

/** Call before `page.goto`: records every websocket the page opens from then on. */
export function recordSignalling(page: Page): SignallingLog {
  const log: SignallingLog = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => {
      const message = parse(frame.payload);
      if (message && message.type !== 'ping') log.sent.push(message);
    });
    ws.on('framereceived', (frame) => {
      const message = parse(frame.payload);
      if (message && message.type !== 'pong') log.received.push(message);
    });
  });
  return log;
}
