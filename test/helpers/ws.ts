/** A raw websocket client for protocol tests: sends anything, records everything. */
import type { ServerMessage } from '@geosfu/common';
import WebSocket from 'ws';

export interface RawClient {
  ws: WebSocket;
  messages: ServerMessage[];
  send(data: string | Buffer | object): void;
  /** Resolves with the first message (already received or future) that matches. */
  waitFor(match: (m: ServerMessage) => boolean, timeoutMs?: number): Promise<ServerMessage>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export async function rawClient(
  url: string,
  options: { autoPong?: boolean } = {},
): Promise<RawClient> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/v1/signal`;
  const ws = new WebSocket(wsUrl, { autoPong: options.autoPong ?? true });
  const messages: ServerMessage[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)) as ServerMessage);
    for (const w of [...waiters]) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    send(data) {
      ws.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data));
    },
    waitFor(match, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.find(match);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 2000)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    closed,
    close() {
      ws.terminate();
    },
  };
}
