#!/usr/bin/env node
/**
 * One peer of a latency experiment, as a process of its own (the runner spawns it, in the lab
 * through `ip netns exec <ns>` so that its traffic crosses the emulated links):
 *
 *   node --conditions=source --import tsx botWorker.ts '<config JSON>'
 *
 * It connects a werift Bot that publishes synthetic VP8 video (+ opus audio) and subscribes,
 * and reports on stdout, one JSON object per line (`BotWorkerLine`), nothing else:
 *
 *   joined     once joined (joinMs: from the start of connect to the server's `joined`)
 *   firstMedia per kind, when the first packet of `peerIdentity`'s stream arrives
 *   clock      the node's clock against this process's (NTP style), after the join and every 30 s
 *   sample     every `sampleIntervalMs`: what `peerIdentity`'s streams delivered in the interval
 *   error      a failure (then exit 1): connect failed, the connection closed unexpectedly or
 *              went silent (no pong to the keep-alive pings for longer than the node's timeout)
 *   final      on stop: the bot's cumulative stats (then exit 0)
 *
 * Stop: the line `stop` on stdin, SIGTERM or SIGINT, or the end of stdin (the parent died), so
 * spawn it with a piped stdin: an ignored stdin (/dev/null) ends at once and stops the worker.
 * Exit codes: 0 stopped, 1 failure (an `error` line says which), 2 bad config (on stderr).
 * Logs (pino, `logLevel`, default warn) go to stderr.
 *
 * Import only types from this module: importing it runs the worker.
 */
import { createInterface } from 'node:readline';
import { Bot, type BotStats, nowMs, type ReceivedIntervalStats } from '@geosfu/client/bot';
import { type Logger, pino } from 'pino';
import { z } from 'zod';

const CLOCK_INTERVAL_MS = 30_000;
const CLOCK_SAMPLES = 5;
/** How long closing the bot may take before the process exits anyway. */
const CLOSE_TIMEOUT_MS = 5_000;

const httpOrWsUrl = z
  .string()
  .refine((s) => /^(https?|wss?):\/\//i.test(s) && URL.canParse(s), 'expected an http(s) URL');

export const BotWorkerConfig = z
  .strictObject({
    /** A node, or `sfu-directory` / any node with `route: true`. */
    url: httpOrWsUrl,
    /** True: ask `url`'s GET /v1/route where to connect; false: connect to `url` itself. */
    route: z.boolean(),
    room: z.string().min(1),
    identity: z.string().min(1),
    /** Without one, a dev token from `url`'s POST /v1/dev/token (a --dev node). */
    token: z.string().min(1).optional(),
    /** Pin a region through the route (needs `route: true`). */
    region: z.string().min(1).optional(),
    /** Local addresses for ICE (e.g. the namespace's address). */
    hostAddresses: z.array(z.string().min(1)).min(1).optional(),
    /** Synthetic video bitrate, bit/s. */
    videoBitrate: z.number().positive().default(1_500_000),
    audio: z.boolean().default(true),
    sampleIntervalMs: z.number().int().min(100).default(5_000),
    /** Each step of the connect (route, websocket, publish, ICE/DTLS) gets this long. */
    connectTimeoutMs: z.number().int().positive().default(20_000),
    /** The other peer: only its streams are sampled. */
    peerIdentity: z.string().min(1),
    logLevel: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('warn'),
  })
  .refine((c) => c.region === undefined || c.route, {
    message: 'pinning a region needs route: true',
    path: ['region'],
  });
/** The config as written (defaults optional). */
export type BotWorkerConfigInput = z.input<typeof BotWorkerConfig>;
export type BotWorkerConfig = z.output<typeof BotWorkerConfig>;

/** One received stream of the peer over one interval (the bot's `intervalStats()`). */
export type SampleStream = Omit<ReceivedIntervalStats, 'participant'>;

/** The lines on stdout. Times `at` and `t` are epoch ms (performance.timeOrigin + now()). */
export type BotWorkerLine =
  | {
      type: 'joined';
      /** Start of connect (dev token, route, websocket, join) to the server's `joined`, ms. */
      joinMs: number;
      /** Websocket open to `joined`, ms. */
      wsJoinMs: number;
      /** Start of connect to publishing (transport up, sources started), ms. */
      connectMs: number;
      /** The route answer's node id when routed, else `url`. */
      node: string;
      /** What the node said in `joined`. */
      nodeId: string;
      region: string;
      sessionId: string;
      at: number;
    }
  | {
      type: 'firstMedia';
      kind: 'video' | 'audio';
      /** From `joined` to the first packet of the peer's stream of this kind, ms. */
      ms: number;
      at: number;
    }
  | {
      type: 'clock';
      /** Node clock minus this process's clock, ms. */
      offsetMs: number;
      rttMs: number;
      at: number;
    }
  | { type: 'sample'; t: number; streams: SampleStream[] }
  | { type: 'error'; code: string; message: string }
  | { type: 'final'; stats: BotStats };

export type ParsedConfig = { ok: true; config: BotWorkerConfig } | { ok: false; message: string };

export function parseBotWorkerConfig(raw: string | undefined): ParsedConfig {
  if (raw === undefined || raw.trim() === '') {
    return { ok: false, message: 'missing the config: pass one JSON object as the argument' };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    return { ok: false, message: `the config is not JSON: ${(error as Error).message}` };
  }
  const result = BotWorkerConfig.safeParse(json);
  if (!result.success) return { ok: false, message: z.prettifyError(result.error) };
  return { ok: true, config: result.data };
}

function round(value: number, decimals = 3): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length > 0) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'DevTokenError' ? 'DEV_TOKEN' : 'CONNECT_FAILED';
}

class Worker {
  readonly #config: BotWorkerConfig;
  readonly #log: Logger;
  #bot: Bot | undefined;
  #phase: 'connecting' | 'running' | 'ending' = 'connecting';
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #firstMedia = new Set<string>();
  #measuring = false;
  #joinedAtMs = 0;

  constructor(config: BotWorkerConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
  }

  async run(): Promise<void> {
    const c = this.#config;
    // Connecting can take a while on WAN links, but never forever: every step has its own
    // timeout; this bounds their sum (dev token 10 s, join 10 s, four steps of connectTimeoutMs).
    const deadlineMs = 4 * c.connectTimeoutMs + 20_000;
    const watchdog = setTimeout(() => {
      this.fail('TIMEOUT', `not connected within ${deadlineMs} ms`);
    }, deadlineMs);
    let bot: Bot;
    try {
      bot = await Bot.connect({
        url: c.url,
        route: c.route,
        ...(c.region ? { region: c.region } : {}),
        ...(c.token ? { token: c.token } : {}),
        room: c.room,
        identity: c.identity,
        publish: { video: true, audio: c.audio, videoCodec: 'vp8', bitrate: c.videoBitrate },
        subscribe: true,
        ...(c.hostAddresses ? { hostAddresses: c.hostAddresses } : {}),
        connectTimeoutMs: c.connectTimeoutMs,
        logger: this.#log,
      });
    } catch (error) {
      this.fail(errorCode(error), `connect failed: ${(error as Error).message}`);
      return;
    } finally {
      clearTimeout(watchdog);
    }
    if (this.#phase !== 'connecting') {
      // Stopped (or failed) while connecting: the process is on its way out.
      void bot.close('worker stopped while connecting');
      return;
    }
    this.#bot = bot;
    this.#phase = 'running';
    bot.on('closed', (reason) => {
      if (this.#phase === 'running') this.fail('CLOSED', `the bot's connection closed: ${reason}`);
    });
    if (bot.closed) {
      this.fail('CLOSED', `the bot's connection closed: ${bot.closedReason ?? 'unknown'}`);
      return;
    }
    bot.on('serverError', (e) => this.#log.warn(e, 'server error'));
    this.#watchSignalling(bot);
    this.#announceJoined(bot);
    this.#watchFirstMedia(bot);
    void this.#measureClock(bot);
    this.#every(CLOCK_INTERVAL_MS, () => void this.#measureClock(bot));
    this.#every(c.sampleIntervalMs, () => this.#sample(bot));
  }

  /** Prints `final`, closes the bot and exits 0. Idempotent; ignored after a failure. */
  async stop(why: string): Promise<void> {
    if (this.#phase === 'ending') return;
    const wasRunning = this.#phase === 'running';
    this.#phase = 'ending';
    this.#clearTimers();
    this.#log.info({ why }, 'stopping');
    const bot = this.#bot;
    emit({ type: 'final', stats: bot ? bot.stats() : { received: [], sent: [] } });
    if (bot && wasRunning) {
      await Promise.race([
        bot.close(`worker stopped (${why})`),
        new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref()),
      ]);
    }
    exit(0);
  }

  /** Prints `error` and exits 1. Ignored once ending. */
  fail(code: string, message: string): void {
    if (this.#phase === 'ending') {
      this.#log.warn({ code, message }, 'error while ending');
      return;
    }
    this.#phase = 'ending';
    this.#clearTimers();
    this.#log.error({ code, message }, 'failed');
    emit({ type: 'error', code, message });
    const bot = this.#bot;
    if (bot && !bot.closed) {
      void Promise.race([
        bot.close(`worker failed (${code})`),
        new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref()),
      ]).then(() => exit(1));
    } else {
      exit(1);
    }
  }

  #announceJoined(bot: Bot): void {
    const t = bot.timings;
    const joinedAt = t.joinedAtMs ?? nowMs();
    this.#joinedAtMs = joinedAt;
    const joined = bot.joined;
    const route = bot.route;
    emit({
      type: 'joined',
      joinMs: round(joinedAt - t.startedAtMs),
      wsJoinMs: round(joinedAt - (t.wsOpenAtMs ?? t.startedAtMs)),
      connectMs: round((t.publishedAtMs ?? nowMs()) - t.startedAtMs),
      node: route ? route.nodeId : this.#config.url,
      nodeId: joined.nodeId,
      region: joined.region,
      sessionId: joined.sessionId,
      at: round(joinedAt),
    });
  }

  /**
   * A link that goes silent closes no socket: the bot would wait forever. The node answers the
   * keep-alive pings every `pingIntervalMs`; a silence longer than the node's own timeout plus
   * one interval is a dead connection.
   */
  #watchSignalling(bot: Bot): void {
    const { pingIntervalMs, pingTimeoutMs } = bot.joined;
    const limitMs = pingTimeoutMs + pingIntervalMs;
    let lastPongAtMs = nowMs();
    bot.signal.on('pong', () => {
      lastPongAtMs = nowMs();
    });
    this.#every(pingIntervalMs, () => {
      const silentMs = nowMs() - lastPongAtMs;
      if (silentMs > limitMs) {
        this.fail('SIGNAL_TIMEOUT', `no pong from the node for ${Math.round(silentMs)} ms`);
      }
    });
  }

  #watchFirstMedia(bot: Bot): void {
    const peer = this.#config.peerIdentity;
    const report = (kind: 'video' | 'audio', atMs: number) => {
      if (this.#phase !== 'running' || this.#firstMedia.has(kind)) return;
      this.#firstMedia.add(kind);
      emit({ type: 'firstMedia', kind, ms: round(atMs - this.#joinedAtMs), at: round(atMs) });
    };
    // Packets may have arrived while the bot was still connecting (publishing), before any
    // listener could be attached.
    for (const s of bot.stats().received) {
      if (s.participant === peer && s.firstPacketAtMs !== null) report(s.kind, s.firstPacketAtMs);
    }
    bot.on('firstPacket', (identity, kind, atMs) => {
      if (identity === peer) report(kind, atMs);
    });
  }

  async #measureClock(bot: Bot): Promise<void> {
    if (this.#measuring || this.#phase !== 'running') return;
    this.#measuring = true;
    try {
      const { offsetMs, rttMs } = await bot.measureClock(CLOCK_SAMPLES);
      if (this.#phase === 'running') {
        emit({ type: 'clock', offsetMs: round(offsetMs), rttMs: round(rttMs), at: round(nowMs()) });
      }
    } catch (error) {
      if (this.#phase === 'running') this.#log.warn({ err: error }, 'clock measurement failed');
    } finally {
      this.#measuring = false;
    }
  }

  #sample(bot: Bot): void {
    if (this.#phase !== 'running') return;
    const t = nowMs();
    // Every stream's interval ends now, also those of other participants (not reported).
    const streams = bot
      .intervalStats(t)
      .filter((s) => s.participant === this.#config.peerIdentity)
      .map(({ participant: _, ...stream }): SampleStream => stream);
    emit({ type: 'sample', t: round(t), streams });
  }

  #every(ms: number, fn: () => void): void {
    this.#timers.push(setInterval(fn, ms));
  }

  #clearTimers(): void {
    for (const t of this.#timers.splice(0)) clearInterval(t);
  }
}

let stdoutBroken = false;

function emit(line: BotWorkerLine): void {
  if (stdoutBroken) return;
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

let exiting = false;

/** Exits once stdout has taken everything written so far. */
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  process.exitCode = code;
  if (stdoutBroken) process.exit(code);
  process.stdout.write('', () => process.exit(code));
  // A stdout nobody reads any more must not hold the exit.
  setTimeout(() => process.exit(code), 2_000).unref();
}

function main(): void {
  // stdout carries the protocol only: whatever a library prints goes to stderr.
  console.log = console.error;
  console.info = console.error;
  console.debug = console.error;
  const parsed = parseBotWorkerConfig(process.argv[2]);
  if (!parsed.ok) {
    process.stderr.write(`bot-worker: bad config: ${parsed.message}\n`);
    process.exit(2);
  }
  const config = parsed.config;
  const log = pino(
    { name: 'bot-worker', level: config.logLevel, base: { identity: config.identity } },
    pino.destination(2),
  );
  const worker = new Worker(config, log);

  process.stdout.on('error', (error) => {
    // EPIPE: the parent is gone; nobody is left to report to.
    stdoutBroken = true;
    log.warn({ err: error }, 'stdout failed');
    void worker.stop('stdout closed');
  });
  process.on('SIGTERM', () => void worker.stop('SIGTERM'));
  process.on('SIGINT', () => void worker.stop('SIGINT'));
  process.on('uncaughtException', (error) => {
    worker.fail('INTERNAL', `uncaught: ${error.stack ?? error.message}`);
  });
  process.on('unhandledRejection', (reason) => {
    worker.fail('INTERNAL', `unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`);
  });
  const stdin = createInterface({ input: process.stdin });
  stdin.on('line', (line) => {
    const command = line.trim();
    if (command === 'stop') void worker.stop('stop on stdin');
    else if (command !== '') log.warn({ command }, 'unknown command on stdin');
  });
  stdin.on('close', () => void worker.stop('stdin closed'));

  void worker.run();
}

main();
