/**
 * The command line of `sfu-bot`: usage text and parsing, apart from cli.ts (which runs on
 * import) so that tests can call `parseCli` directly.
 */
import { parseArgs } from 'node:util';
import type { TurnTransport } from './peer.js';
import type { PublishOptions } from './publisher.js';

export const USAGE = `usage: sfu-bot --url http://host:7880 --room R --identity I [options]

  --url URL                 any node or sfu-directory (http(s)://); the bot asks its
                            /v1/route for the nearest node and connects there
  --region R                pin region R (route to a node there)
  --node ID                 pin node ID; not together with --region. A pin needs the
                            canPinRegion grant: the dev token has it, a --token must too
  --room R, --identity I    with no --token, get one from the dev endpoint of --url
  --name NAME               display name for the dev token
  --token T                 an access token (then --room and --identity are not needed)
  --publish video,audio     what to publish (default: nothing)
  --subscribe               subscribe to every track in the room
  --duration S              seconds to run, then print stats and exit (default: until Ctrl-C)
  --json                    print one JSON object on stdout at the end, with the route taken
  --host-addresses A[,B]    use only these local addresses for ICE (e.g. 127.0.0.1)
  --turn-transport T        udp|tcp|tls: use the node's TURN URL of this transport (werift
                            uses one TURN URL; default the first the node lists)
  --codec vp8|h264          video codec (default vp8)
  --simulcast               send the video as three VP8 simulcast layers (rids q, h, f:
                            320x180 at 150 kbit/s, 640x360 at 500, 1280x720 at 1500; RID
                            header extension, a keyframe per layer on that layer's PLI) and
                            pause the layers the node says nobody needs (dynacast);
                            --bitrate does not apply
  --h264-profile ID         H264 profile-level-id (default 42e01f; Chrome uses 42001f)
  --bitrate BPS             video bitrate (default 1500000)
  --fps N                   video frame rate (default 30)
  --keyframe-interval MS    periodic key frame interval (default 10000, 0 = only on PLI)
  --loss-percent N          drop N% of outgoing publisher packets (NACK tests)
  --receive-loss-percent N  drop N% of incoming subscriber packets
  --log-level LEVEL         stderr log level (default info)
  -h, --help                this text

The bot exits 0 after --duration or on Ctrl-C, 1 when it cannot connect or the server ends
the session (a draining node included: it does not reconnect by itself), 2 on bad usage.`;

/** A command line that cannot work; the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CliOptions {
  url: string;
  token?: string | undefined;
  room?: string | undefined;
  identity?: string | undefined;
  name?: string | undefined;
  region?: string | undefined;
  node?: string | undefined;
  publish?: PublishOptions | undefined;
  subscribe: boolean;
  durationMs?: number | undefined;
  json: boolean;
  hostAddresses?: string[] | undefined;
  lossPercent?: number | undefined;
  receiveLossPercent?: number | undefined;
  turnTransport?: TurnTransport | undefined;
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

/** A non-empty, trimmed value of a string flag, or undefined when the flag is absent. */
function pinFlag(values: Record<string, unknown>, name: string): string | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = String(raw).trim();
  if (value === '') throw new UsageError(`--${name} needs a value`);
  return value;
}

/** Parses `process.argv.slice(2)`. Throws UsageError on a command line that cannot work. */
export function parseCli(argv: string[]): CliOptions | 'help' {
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
  const region = pinFlag(values, 'region');
  const node = pinFlag(values, 'node');
  if (region !== undefined && node !== undefined) {
    throw new UsageError(
      '--region and --node are mutually exclusive: pin a region or a node, not both',
    );
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
  if (values.simulcast && codec !== 'vp8') {
    throw new UsageError('--simulcast sends VP8 layers: not with --codec h264');
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
      ...(values.simulcast ? { simulcast: true } : {}),
    };
    if (values.simulcast && !publish.video) {
      throw new UsageError('--simulcast needs --publish video');
    }
  } else if (values.simulcast) {
    throw new UsageError('--simulcast needs --publish video');
  }
  const percent = (name: string) =>
    numberFlag(values, name, (n) => n >= 0 && n <= 100, 'a percentage in [0, 100]');
  const duration = numberFlag(values, 'duration', (n) => n > 0, 'a positive number of seconds');
  const turnTransport = values['turn-transport'];
  if (turnTransport !== undefined && !['udp', 'tcp', 'tls'].includes(turnTransport)) {
    throw new UsageError(`--turn-transport must be udp, tcp or tls, got "${turnTransport}"`);
  }
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
    region,
    node,
    publish,
    subscribe: values.subscribe ?? false,
    durationMs: duration === undefined ? undefined : duration * 1000,
    json: values.json ?? false,
    hostAddresses,
    lossPercent: percent('loss-percent'),
    receiveLossPercent: percent('receive-loss-percent'),
    turnTransport: turnTransport as TurnTransport | undefined,
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
      region: { type: 'string' },
      node: { type: 'string' },
      publish: { type: 'string' },
      subscribe: { type: 'boolean' },
      duration: { type: 'string' },
      json: { type: 'boolean' },
      'host-addresses': { type: 'string' },
      'turn-transport': { type: 'string' },
      codec: { type: 'string' },
      simulcast: { type: 'boolean' },
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
