#!/usr/bin/env node
/**
 * Bots of the join-burst test, in a process of their own so that they compete with the node
 * for the cores as real clients on the same machine would:
 *
 *   node --conditions=source --import tsx burst-worker.ts '<config JSON>'
 *
 * All `count` bots connect at once (each subscribes; the first `publishers` also publish
 * video) and each reports on stdout, one JSON line per event (`BurstLine`): `joined` when
 * connected (published, for a publisher), `failed` when its connect failed, `media` once it
 * received `mediaPackets` packets from every identity in `expect`, `closed` when the node
 * ended its session. Stops (closing every bot) on `stop` on stdin or at its end.
 * Logs go to stderr. Not a test file: the test spawns it.
 */
import { createInterface } from 'node:readline';
import { Bot } from '@geosfu/client/bot';
import { pino } from 'pino';

interface Config {
  url: string;
  room: string;
  prefix: string;
  count: number;
  publishers: number;
  /** Identities whose video every bot must receive. */
  expect: string[];
  mediaPackets: number;
  connectTimeoutMs: number;
  mediaTimeoutMs: number;
  /** Of the publishers' synthetic video. */
  fps: number;
  bitrate: number;
}

export type BurstLine =
  | { type: 'joined'; identity: string; ms: number }
  | { type: 'failed'; identity: string; code: string; message: string; ms: number }
  | { type: 'media'; identity: string; ms: number }
  | { type: 'noMedia'; identity: string; message: string }
  | { type: 'closed'; identity: string; reason: string };

const config = JSON.parse(process.argv[2] ?? '{}') as Config;
const logger = pino(
  { level: process.env.BURST_LOG_LEVEL ?? 'warn', base: { worker: config.prefix } },
  pino.destination(2),
);
const line = (l: BurstLine) => process.stdout.write(`${JSON.stringify(l)}\n`);
const bots: Bot[] = [];
let stopping = false;

async function run(i: number): Promise<void> {
  const identity = `${config.prefix}-${i}`;
  const startedAt = performance.now();
  let bot: Bot;
  try {
    bot = await Bot.connect({
      url: config.url,
      route: false,
      room: config.room,
      identity,
      hostAddresses: ['127.0.0.1'],
      connectTimeoutMs: config.connectTimeoutMs,
      logger: logger.child({ identity }),
      ...(i < config.publishers
        ? { publish: { video: true, audio: false, bitrate: config.bitrate, fps: config.fps } }
        : {}),
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    line({
      type: 'failed',
      identity,
      code: typeof code === 'string' ? code : 'CONNECT_FAILED',
      message: (error as Error).message,
      ms: Math.round(performance.now() - startedAt),
    });
    return;
  }
  bots.push(bot);
  line({ type: 'joined', identity, ms: Math.round(performance.now() - startedAt) });
  bot.once('closed', (reason) => {
    if (!stopping) line({ type: 'closed', identity, reason });
  });
  try {
    for (const peer of config.expect) {
      if (peer === identity) continue;
      await bot.waitForPackets(peer, 'video', config.mediaPackets, config.mediaTimeoutMs);
    }
    line({ type: 'media', identity, ms: Math.round(performance.now() - startedAt) });
  } catch (error) {
    line({ type: 'noMedia', identity, message: (error as Error).message });
  }
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled(bots.map((b) => b.close('stopped')));
  process.exit(0);
}

createInterface({ input: process.stdin }).on('close', () => void stop());
process.stdin.on('data', (d: Buffer) => {
  if (d.toString().includes('stop')) void stop();
});
process.on('SIGTERM', () => void stop());
for (let i = 0; i < config.count; i++) void run(i);
