/** Runs a probe pair across the lab (probe.ts) and summarises what the link did. */
import { createInterface } from 'node:readline';
import type { HostName } from './experiment/types.js';
import { siblingScript, type WanLab } from './lab.js';
import type { ProbeReceipt, ProbeSent } from './probe.js';

export interface LinkMeasurement {
  sent: number;
  received: number;
  lossPercent: number;
  reordered: number;
  /** Received packets per second over the arrival span. */
  packetsPerSecond: number;
  throughputKbps: number;
  delayMs: {
    p25: number;
    p50: number;
    p75: number;
    p99: number;
    mean: number;
    sd: number;
    /**
     * The standard deviation read from the interquartile range (IQR / 1.349 for a normal
     * spread): unlike `sd`, a few packets held up by a VM stall do not move it.
     */
    robustSd: number;
    max: number;
  };
  /** Share of the received packets whose delay was within `toleranceMs` of `targetMs`. */
  withinMs(targetMs: number, toleranceMs: number): number;
}

function firstLine<T>(lines: ReturnType<typeof createInterface>, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        const m = JSON.parse(line) as { type?: string };
        if (m.type === type) resolve(m as T);
      } catch {
        // not ours
      }
    });
    lines.once('close', () => reject(new Error(`probe ended without a "${type}" line`)));
  });
}

export async function measureLink(
  lab: WanLab,
  from: HostName,
  to: HostName,
  options: { rate: number; count: number; bytes?: number; port?: number },
): Promise<LinkMeasurement> {
  const { file, args } = siblingScript('probe');
  const port = String(options.port ?? 9000);
  const recv = lab.spawn(to, file, [...args, 'recv', port, '1500']);
  const stderr: string[] = [];
  recv.child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  const recvLines = createInterface({ input: recv.child.stdout as NodeJS.ReadableStream });
  const receipt = firstLine<ProbeReceipt>(recvLines, 'recv');
  await firstLine(recvLines, 'listening').catch((error: Error) => {
    throw new Error(`${error.message}: ${stderr.join('').slice(-1000)}`);
  });
  const send = lab.spawn(from, file, [
    ...args,
    'send',
    lab.overlay(to),
    port,
    String(options.rate),
    String(options.count),
    String(options.bytes ?? 1000),
  ]);
  const sent = await firstLine<ProbeSent>(
    createInterface({ input: send.child.stdout as NodeJS.ReadableStream }),
    'sent',
  );
  const r = await receipt;
  await Promise.all([send.exited, recv.exited]);
  const sorted = [...r.delaysMs].sort((a, b) => a - b);
  const pick = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  const sd = Math.sqrt(
    sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, sorted.length),
  );
  const spanS = r.spanMs / 1000;
  return {
    sent: sent.sent,
    received: r.received,
    lossPercent: (100 * (sent.sent - r.received)) / sent.sent,
    reordered: r.reordered,
    packetsPerSecond: spanS > 0 ? r.received / spanS : 0,
    throughputKbps: spanS > 0 ? (r.bytes * 8) / 1000 / spanS : 0,
    delayMs: {
      p25: pick(25),
      p50: pick(50),
      p75: pick(75),
      p99: pick(99),
      mean,
      sd,
      robustSd: (pick(75) - pick(25)) / 1.349,
      max: sorted.at(-1) ?? Number.NaN,
    },
    withinMs: (targetMs, toleranceMs) =>
      sorted.filter((d) => Math.abs(d - targetMs) <= toleranceMs).length /
      Math.max(1, sorted.length),
  };
}
