#!/usr/bin/env node
/**
 * sfu-bot: join a room with a werift bot, publish synthetic media and/or subscribe, and print
 * what was sent and received. With --json stdout carries exactly one JSON object (logs go to
 * stderr), so scripts can parse it.
 */
import { parseArgs } from 'node:util';
import type { TrackKind } from '@geosfu/common/protocol';
import { pino } from 'pino';
import { Bot, type BotStats } from './Bot.js';
import type { PublishOptions } from './publisher.js';

const USAGE = `usage: sfu-bot --url http://host:7880 --room R --identity I [options]

  --url URL                 the node (http(s):// or ws(s)://)
  --room R, --identity I    with no --token, get one from the node's dev endpoint
  --name NAME               display name for the dev token
  --token T                 an access token (then --room and --identity are not needed)
  --publish video,audio     what to publish (default: nothing)
  --subscribe               subscribe to every track in the room
  --duration S              seconds to run, then print stats and exit (default: until Ctrl-C)
  --json                    print one JSON object on stdout at the end
  --host-addresses A[,B]    use only these local addresses for ICE (e.g. 127.0.0.1)
  --codec vp8|h264          video codec (default vp8)
  --h264-profile ID         H264 profile-level-id (default 42e01f; Chrome uses 42001f)
  --bitrate BPS             video bitrate (default 1500000)
  --fps N                   video frame rate (default 30)
  --keyframe-interval MS    periodic key frame interval (default 10000, 0 = only on PLI)
  --loss-percent N          drop N% of outgoing publisher packets (NACK tests)
  --receive-loss-percent N  drop N% of incoming subscriber packets
  --log-level LEVEL         stderr log level (default info)
  -h, --help                this text`;

class UsageError extends Error {}

interface CliOptions {
  url: string;
  token?: string;
  room?: string;
  identity?: string;
  name?: string;
  publish?: PublishOptions;
  subscribe: boolean;
  durationMs?: number;
  json: boolean;
  hostAddresses?: string[];
  lossPercent?: number;
  receiveLossPercent?: number;
  logLevel: string;
}

function numberFlag(
  values: Record<string, unknown>,
  name: string,
  check: (n: number) => boolean,
  expectation: string,
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || !check(n)) {
    throw new UsageError(`--${name} must be ${expectation}, got "${String(raw)}"`);
  }
  return n;
}

function parseCli(argv: string[]): CliOptions | 'help' {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values.url) throw new UsageError('--url is required');
  try {
    new URL(values.url);
  } catch {
    throw new UsageError(`--url is not a URL: "${values.url}"`);
  }
  if (!values.token && (!values.room || !values.identity)) {
    throw new UsageError('give --token, or --room and --identity to get a dev token');
  }
  const codec = values.codec ?? 'vp8';
  if (codec !== 'vp8' && codec !== 'h264') {
    throw new UsageError(`--codec must be vp8 or h264, got "${codec}"`);
  }
  const profile = values['h264-profile'];
  if (profile !== undefined && !/^[0-9a-fA-F]{6}$/.test(profile)) {
    throw new UsageError(`--h264-profile must be 6 hex digits (e.g. 42001f), got "${profile}"`);
  }
  let publish: PublishOptions | undefined;
  if (values.publish !== undefined && values.publish !== 'none') {
    const kinds = values.publish.split(',').map((k) => k.trim());
    for (const k of kinds) {
      if (k !== 'video' && k !== 'audio') {
        throw new UsageError(`--publish takes video and/or audio, got "${k}"`);
      }
    }
    publish = {
      video: kinds.includes('video'),
      audio: kinds.includes('audio'),
      videoCodec: codec,
      h264ProfileLevelId: profile?.toLowerCase(),
      bitrate: numberFlag(values, 'bitrate', (n) => n >= 10_000, 'a bitrate >= 10000 bit/s'),
      fps: numberFlag(values, 'fps', (n) => n > 0 && n <= 120, 'in (0, 120]'),
      keyframeIntervalMs: numberFlag(values, 'keyframe-interval', (n) => n >= 0, '>= 0 ms'),
    };
  }
  const percent = (name: string) =>
    numberFlag(values, name, (n) => n >= 0 && n <= 100, 'a percentage in [0, 100]');
  const duration = numberFlag(values, 'duration', (n) => n > 0, 'a positive number of seconds');
  const hostAddresses = values['host-addresses']
    ?.split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  return {
    url: values.url,
    token: values.token,
    room: values.room,
    identity: values.identity,
    name: values.name,
    publish,
    subscribe: values.subscribe ?? false,
    durationMs: duration === undefined ? undefined : duration * 1000,
    json: values.json ?? false,
    hostAddresses,
    lossPercent: percent('loss-percent'),
    receiveLossPercent: percent('receive-loss-percent'),
    logLevel: values['log-level'] ?? 'info',
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      room: { type: 'string' },
      identity: { type: 'string' },
      name: { type: 'string' },
      token: { type: 'string' },
      publish: { type: 'string' },
      subscribe: { type: 'boolean' },
      duration: { type: 'string' },
      json: { type: 'boolean' },
      'host-addresses': { type: 'string' },
      codec: { type: 'string' },
      'h264-profile': { type: 'string' },
      bitrate: { type: 'string' },
      fps: { type: 'string' },
      'keyframe-interval': { type: 'string' },
      'loss-percent': { type: 'string' },
      'receive-loss-percent': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function fmt(n: number | null, digits = 1): string {
  return n === null ? '-' : n.toFixed(digits);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')).join('\n');
}

function readable(stats: BotStats, header: string): string {
  const out = [header];
  if (stats.sent.length > 0) {
    out.push('', 'sent');
    out.push(
      table([
        ['kind', 'codec', 'packets', 'bytes', 'frames', 'keyframes', 'PLIs'],
        ...stats.sent.map((s) => [
          s.kind,
          s.codec,
          String(s.packets),
          String(s.bytes),
          String(s.frames),
          String(s.keyframes),
          String(s.plisReceived),
        ]),
      ]),
    );
  }
  out.push('', 'received');
  if (stats.received.length === 0) out.push('  (nothing)');
  else
    out.push(
      table([
        [
          'participant',
          'kind',
          'codec',
          'packets',
          'lost',
          'kbps',
          'keyframes',
          'jitter',
          'p50',
          'p95',
          'p99',
        ],
        ...stats.received.map((r) => [
          r.participant,
          r.kind,
          r.codec ?? '-',
          String(r.packets),
          String(r.lost),
          fmt(r.bitrateKbps),
          String(r.keyframes),
          fmt(r.jitterMs, 2),
          fmt(r.latencyMs.p50, 2),
          fmt(r.latencyMs.p95, 2),
          fmt(r.latencyMs.p99, 2),
        ]),
      ]),
    );
  out.push('(jitter and latency in ms)');
  return out.join('\n');
}

function write(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${text}\n`, () => resolve()));
}

async function main(): Promise<number> {
  let options: CliOptions | 'help';
  try {
    options = parseCli(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`sfu-bot: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  const opts = options;
  const log = pino({ name: 'sfu-bot', level: opts.logLevel }, pino.destination(2));

  let bot: Bot;
  try {
    bot = await Bot.connect({
      url: opts.url,
      // Without a token, the bot asks the node's dev endpoint for one.
      token: opts.token,
      room: opts.room,
      identity: opts.identity,
      name: opts.name,
      publish: opts.publish,
      subscribe: opts.subscribe,
      hostAddresses: opts.hostAddresses,
      lossPercent: opts.lossPercent,
      receiveLossPercent: opts.receiveLossPercent,
      logger: log,
    });
  } catch (error) {
    console.error(`sfu-bot: ${(error as Error).message}`);
    return 1;
  }
  const startedAt = Date.now();
  bot.on('participantJoined', (p) => log.info({ identity: p.identity }, 'participant joined'));
  bot.on('participantLeft', (p) => log.info(p, 'participant left'));
  bot.on('firstKeyframe', (identity: string, kind: TrackKind, atMs: number) =>
    log.info({ identity, kind, afterMs: Math.round(atMs - startedAt) }, 'first key frame'),
  );
  bot.on('chat', (m) => log.info({ from: m.from.identity, text: m.text }, 'chat'));

  // Ends on the duration, on Ctrl-C/SIGTERM, or when the server ends the session. After the
  // first signal the handlers are gone, so a second Ctrl-C kills the process the usual way.
  let stopWaiting: () => void = () => {};
  const ending = await new Promise<{ why: string; code: number }>((resolve) => {
    const timer =
      opts.durationMs === undefined
        ? undefined
        : setTimeout(() => resolve({ why: 'duration', code: 0 }), opts.durationMs);
    const onInt = () => resolve({ why: 'SIGINT', code: 0 });
    const onTerm = () => resolve({ why: 'SIGTERM', code: 0 });
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    const offClosed = bot.once('closed', (reason) => resolve({ why: reason, code: 1 }));
    stopWaiting = () => {
      clearTimeout(timer);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      offClosed();
    };
  });
  stopWaiting();
  const stats = bot.stats();
  const identity = bot.identity;
  const room = bot.room;
  const sessionId = bot.sessionId;
  await bot.close(ending.why === 'duration' ? 'duration elapsed' : ending.why);
  const durationMs = Date.now() - startedAt;
  if (opts.json) {
    await write(
      JSON.stringify({
        identity,
        room,
        sessionId,
        url: opts.url,
        durationMs,
        endReason: bot.closedReason,
        ...stats,
      }),
    );
  } else {
    await write(readable(stats, `${identity} in ${room}: ${(durationMs / 1000).toFixed(1)} s`));
  }
  if (ending.code !== 0) console.error(`sfu-bot: the session ended early: ${ending.why}`);
  return ending.code;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything is closed by now; if a library still holds a handle, do not hang a script.
    setTimeout(() => {
      console.error('sfu-bot: handles still open 2 s after closing; exiting anyway');
      process.exit(code);
    }, 2_000).unref();
  },
  (error: unknown) => {
    console.error('sfu-bot: unexpected failure', error);
    process.exit(1);
  },
);
