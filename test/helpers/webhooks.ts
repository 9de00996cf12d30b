/** A real HTTP webhook receiver for tests: verifies every delivery as the README's does. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, WEBHOOK_SIGNATURE_HEADER, WebhookEvent } from '@geosfu/common';

export interface WebhookReceiver {
  url: string;
  /** Every authentic delivery that was answered 200, in arrival order. */
  events: WebhookEvent[];
  /** Tries per event id, answered 500 or 200. */
  attempts: Map<string, number>;
  /** Deliveries whose signature did not verify. */
  invalid: number;
  /** Answer 500 to the first `times` tries of the events that `match` selects. */
  failFirst(match: (event: WebhookEvent) => boolean, times: number): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(key: string): Promise<WebhookReceiver> {
  const events: WebhookEvent[] = [];
  const attempts = new Map<string, number>();
  const failures: { match: (event: WebhookEvent) => boolean; times: number }[] = [];
  const receiver = { invalid: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = req.headers[WEBHOOK_SIGNATURE_HEADER];
      if (verifyWebhook(key, body, typeof header === 'string' ? header : undefined)) {
        receiver.invalid++;
        res.writeHead(401).end();
        return;
      }
      const event = WebhookEvent.parse(JSON.parse(body));
      const tries = (attempts.get(event.id) ?? 0) + 1;
      attempts.set(event.id, tries);
      const failing = failures.find((f) => f.match(event));
      if (failing && tries <= failing.times) {
        res.writeHead(500).end();
        return;
      }
      events.push(event);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    events,
    attempts,
    get invalid() {
      return receiver.invalid;
    },
    failFirst(match, times) {
      failures.push({ match, times });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
