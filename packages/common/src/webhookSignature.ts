import { createHmac, timingSafeEqual } from 'node:crypto';

/** A delivery whose `t` is further than this from the receiver's clock is refused (replay). */
export const WEBHOOK_TOLERANCE_MS = 5 * 60_000;

/**
 * The signature header of a webhook delivery: `t=<epoch ms>,v1=<hex HMAC-SHA256>` over
 * `"<t>.<body>"`, keyed by SFU_WEBHOOK_KEY. The time is signed too, so an old delivery
 * cannot be replayed with a fresh `t`.
 */
export function signWebhook(key: string, body: string, t: number = Date.now()): string {
  const mac = createHmac('sha256', key).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${mac}`;
}

/**
 * Checks a delivery as a receiver must: the raw body exactly as it arrived, the header, the
 * key. Returns undefined when authentic and fresh, else why not.
 */
export function verifyWebhook(
  key: string,
  body: string,
  header: string | undefined,
  now: number = Date.now(),
): string | undefined {
  if (!header) return 'no signature header';
  const m = /^t=(\d{1,16}),v1=([0-9a-f]{64})$/.exec(header.trim());
  if (!m?.[1] || !m[2]) return 'the signature header is not t=<ms>,v1=<64 hex digits>';
  const t = Number(m[1]);
  if (Math.abs(now - t) > WEBHOOK_TOLERANCE_MS) return 'too old (or clocks out of sync)';
  const expected = createHmac('sha256', key).update(`${t}.${body}`).digest();
  if (!timingSafeEqual(expected, Buffer.from(m[2], 'hex'))) return 'bad signature';
  return undefined;
}
