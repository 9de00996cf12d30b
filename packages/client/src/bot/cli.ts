#!/usr/bin/env node
/**
 * sfu-bot: join a room with a werift bot, publish synthetic media and/or subscribe, and print
 * what was sent and received. With --json stdout carries exactly one JSON object (logs go to
 * stderr), so scripts can parse it.
 */
import type { TrackKind } from '@geosfu/common/protocol';
import { pino } from 'pino';
import { SignalError } from '../core/SignalClient.js';
import { Bot, type BotStats } from './Bot.js';
import { type CliOptions, parseCli, USAGE, UsageError } from './cliOptions.js';

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
      // Any node or the directory: the bot asks its /v1/route where to connect.
      url: opts.url,
      region: opts.region,
      node: opts.node,
      // Without a token, the bot asks the dev endpoint of --url for one.
      token: opts.token,
      room: opts.room,
      identity: opts.identity,
      name: opts.name,
      publish: opts.publish,
      subscribe: opts.subscribe,
      hostAddresses: opts.hostAddresses,
      lossPercent: opts.lossPercent,
      receiveLossPercent: opts.receiveLossPercent,
      turnTransport: opts.turnTransport,
      logger: log,
    });
  } catch (error) {
    const code = error instanceof SignalError ? ` (${error.code})` : '';
    console.error(`sfu-bot: ${(error as Error).message}${code}`);
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
  const route = bot.route;
  const candidates = await bot.selectedCandidates();
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
        route: route
          ? {
              nodeId: route.nodeId,
              region: route.region,
              reason: route.reason,
              distanceKm: route.distanceKm,
            }
          : null,
        ...(bot.reconnectUrl ? { reconnectUrl: bot.reconnectUrl } : {}),
        // The candidate types of the pairs ICE selected: `relay` when media went via TURN.
        candidates,
        ...stats,
      }),
    );
  } else {
    const via = route
      ? ` on ${route.nodeId} (${route.region}, ${route.reason}${route.distanceKm === null ? '' : `, ${route.distanceKm} km`})`
      : '';
    await write(
      readable(stats, `${identity} in ${room}${via}: ${(durationMs / 1000).toFixed(1)} s`),
    );
  }
  if (ending.code !== 0) console.error(`sfu-bot: the session ended early: ${ending.why}`);
  if (bot.reconnectUrl) {
    console.error(`sfu-bot: the node is draining; run again with --url ${bot.reconnectUrl}`);
  }
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
