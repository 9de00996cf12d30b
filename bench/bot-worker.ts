/**
 * A client process of the memory and joins benchmarks (forked through bench/fanout-common.ts
 * Child; not a benchmark itself): werift bots from '@geosfu/client/bot' that publish, or join
 * as subscribers at a given moment and report when their first key frame arrived.
 */
import { Bot } from '@geosfu/client/bot';
import { nowMs, serve } from './fanout-common.js';

const HOST = ['127.0.0.1'];
const CONNECT_MS = 30_000;

const bots = new Set<Bot>();

async function closeAll(): Promise<void> {
  const all = [...bots];
  bots.clear();
  await Promise.allSettled(all.map((b) => b.close()));
}

interface JoinResult {
  identity: string;
  /** ms from `at` (the moment every bot of the call started) to Bot.connect resolving. */
  joinedMs: number;
  /** ms from `at` to the first video key frame from `publisher`; NaN on error. */
  keyframeMs: number;
  error?: string;
}

serve({
  publish: async (args: { url: string; room: string; identity: string }) => {
    const bot = await Bot.connect({
      url: args.url,
      route: false,
      room: args.room,
      identity: args.identity,
      // Key frames only when the node asks for one (a join's PLI), as in bench/relay.bench.ts.
      publish: { video: true, audio: true, keyframeIntervalMs: 600_000 },
      subscribe: false,
      hostAddresses: HOST,
      connectTimeoutMs: CONNECT_MS,
    });
    bots.add(bot);
    return { identity: args.identity };
  },
  /**
   * Waits until `at` (performance.timeOrigin + now(), ms), then connects `count` subscriber
   * bots at once and waits for each one's first video key frame from `publisher`.
   */
  join: async (args: {
    url: string;
    room: string;
    prefix: string;
    count: number;
    publisher: string;
    at: number;
    timeoutMs?: number;
  }): Promise<JoinResult[]> => {
    const wait = args.at - nowMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = args.at;
    const one = async (i: number): Promise<JoinResult> => {
      const identity = `${args.prefix}-${i}`;
      const result: JoinResult = { identity, joinedMs: Number.NaN, keyframeMs: Number.NaN };
      try {
        const bot = await Bot.connect({
          url: args.url,
          route: false,
          room: args.room,
          identity,
          hostAddresses: HOST,
          connectTimeoutMs: CONNECT_MS,
        });
        bots.add(bot);
        result.joinedMs = nowMs() - at;
        const kf = await bot.waitForKeyframe(args.publisher, 'video', args.timeoutMs ?? 20_000);
        result.keyframeMs = kf - at;
      } catch (error) {
        result.error = (error as Error).message;
      }
      return result;
    };
    return Promise.all(Array.from({ length: args.count }, (_, i) => one(i)));
  },
  closeAll,
  close: async () => {
    await closeAll();
    setTimeout(() => process.exit(0), 50);
  },
});
