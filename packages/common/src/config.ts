import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { SfuError } from './errors.js';
import { IceServer } from './protocol.js';
import { REGIONS } from './regions.js';

/**
 * The dev credentials. They are used only with `--dev` / `SFU_DEV=1` (what `npm start` runs)
 * and a node refuses to start with them otherwise: never deploy them.
 */
export const DEV_API_KEY = 'devkey';
export const DEV_API_SECRET = 'devsecret-only-for-local-development';
/** Signs relay messages between dev nodes; a cluster outside dev mode must set its own. */
export const DEV_CLUSTER_SECRET = 'dev-cluster-secret-only-for-local-development';

/** A comma-separated list, items trimmed, empty ones dropped. */
const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const bool = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no', ''])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes');

const port = z.coerce.number().int().min(0).max(65535);

const portRange = z
  .string()
  .regex(/^\d+-\d+$/, 'use MIN-MAX, e.g. 40000-40999')
  .transform((s) => s.split('-').map(Number) as [number, number])
  .refine(
    ([a, b]) => a >= 1024 && b <= 65535 && b > a,
    'the range must lie in 1024-65535 with MIN < MAX',
  );

const ipList = commaList.refine(
  (list) => list.every((ip) => /^[0-9.]+$|^[0-9a-fA-F:]+$/.test(ip)),
  'a comma-separated list of IP addresses',
);

const iceServers = z
  .string()
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      // JSON.parse's message is not useful to an operator; the issue below says what to write.
      ctx.addIssue({
        code: 'custom',
        message: 'must be a JSON array of {urls, username?, credential?}',
      });
      return z.NEVER;
    }
  })
  .pipe(z.array(IceServer));

const turnUrls = commaList.refine(
  (list) => list.every((url) => /^turns?:[^\s?,]+(\?transport=(udp|tcp))?$/.test(url)),
  'comma-separated turn: or turns: URLs, e.g. turn:turn.example.com:3478?transport=tcp',
);

/** A sentinel's `host:port` (`[v6]:port`), as ioredis's `sentinels` option takes it. */
const sentinelAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 10.0.0.5:26379')
  .transform((s) => {
    const colon = s.lastIndexOf(':');
    return { host: s.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(s.slice(colon + 1)) };
  })
  .refine(({ port }) => port >= 1 && port <= 65535, 'a port in 1-65535');

/** One row per setting: its environment variable, its flag, its schema, its default, its doc. */
interface Field {
  env: string;
  flag: string;
  schema: z.ZodType;
  default?: string;
  doc: string;
}

export const CONFIG_FIELDS = {
  httpHost: {
    env: 'SFU_HTTP_HOST',
    flag: 'host',
    schema: z.string().min(1),
    default: '0.0.0.0',
    doc: 'Address the HTTP and websocket server binds.',
  },
  httpPort: {
    env: 'SFU_HTTP_PORT',
    flag: 'port',
    schema: port,
    default: '7880',
    doc: 'HTTP port: API, `/v1/signal` websocket, `/metrics` (unless `SFU_METRICS_PORT`), demo page. 0 picks a free port.',
  },
  metricsPort: {
    env: 'SFU_METRICS_PORT',
    flag: 'metrics-port',
    schema: port,
    doc: 'Serve `/metrics` on this port (bound to `SFU_HTTP_HOST`) instead of the HTTP port, so the public port does not expose it. Unset: `/metrics` on the HTTP port. 0 picks a free port.',
  },
  nodeId: {
    env: 'SFU_NODE_ID',
    flag: 'node-id',
    schema: z
      .string()
      .regex(/^[a-zA-Z0-9._-]{1,64}$/, 'letters, digits, dot, dash, underscore; at most 64'),
    doc: 'Unique id of this node in the cluster. Default: `<hostname>-<6 hex>`.',
  },
  region: {
    env: 'SFU_REGION',
    flag: 'region',
    schema: z.string().regex(/^[a-z0-9-]{1,32}$/, 'lowercase letters, digits, dash'),
    default: 'local',
    doc: 'Region name of this node (e.g. `ams`, `sin`, `hcm`).',
  },
  publicUrl: {
    env: 'SFU_PUBLIC_URL',
    flag: 'public-url',
    schema: z.url(),
    doc: 'Base URL clients use to reach this node. Default: `http://localhost:<port>`.',
  },
  apiKey: {
    env: 'SFU_API_KEY',
    flag: 'api-key',
    schema: z.string().min(1).max(64),
    doc: 'API key: the `iss` of access tokens. Required unless `--dev`.',
  },
  apiSecret: {
    env: 'SFU_API_SECRET',
    flag: 'api-secret',
    schema: z.string().min(32, 'at least 32 characters'),
    doc: 'API secret that signs access tokens (HS256). Required unless `--dev`; at least 32 characters.',
  },
  dev: {
    env: 'SFU_DEV',
    flag: 'dev',
    schema: bool,
    default: 'false',
    doc: 'Dev mode: dev API key, `POST /v1/dev/token` for the demo page. Never in production.',
  },
  rtcPortRange: {
    env: 'SFU_RTC_PORT_RANGE',
    flag: 'rtc-port-range',
    schema: portRange,
    doc: 'UDP port range for WebRTC, `MIN-MAX`. Default: ephemeral ports. One port per PeerConnection.',
  },
  udpReceiveBuffer: {
    env: 'SFU_UDP_RECEIVE_BUFFER',
    flag: 'udp-receive-buffer',
    schema: z.coerce
      .number()
      .int()
      .min(0)
      .max(64 * 1024 * 1024),
    default: String(1024 * 1024),
    doc: "Receive buffer (bytes) of every WebRTC UDP socket, one per PeerConnection: media that arrives while the event loop is busy waits there instead of being dropped. Linux caps it at `net.core.rmem_max` (raise that to match) and counts about twice each datagram's size: 1 MiB holds ~450 packets of 1,200 bytes, about 1 s of a simulcast publisher, 100 ms of a relay link carrying ten. Larger only delays what an overloaded node would drop anyway. 0 keeps the system's default (208 KiB).",
  },
  rtcHostAddresses: {
    env: 'SFU_RTC_HOST_ADDRESSES',
    flag: 'rtc-host-addresses',
    schema: ipList,
    doc: 'Local IPs to gather ICE host candidates on (comma-separated). Default: every non-loopback interface.',
  },
  announcedIps: {
    env: 'SFU_ANNOUNCED_IPS',
    flag: 'announced-ips',
    schema: ipList,
    doc: 'Public IPs to advertise as ICE candidates, for a node behind a 1:1 NAT (cloud VMs).',
  },
  iceServers: {
    env: 'SFU_ICE_SERVERS',
    flag: 'ice-servers',
    schema: iceServers,
    default: '[]',
    doc: 'Extra ICE servers with fixed credentials handed to every client, JSON: `[{"urls":"stun:stun.example.com:3478"}]`. For TURN use `SFU_TURN_URLS` and `SFU_TURN_SECRET`, which mint a credential per session.',
  },
  turnUrls: {
    env: 'SFU_TURN_URLS',
    flag: 'turn-urls',
    schema: turnUrls,
    doc: "This region's TURN server URLs, comma-separated: `turn:turn.ams.example.com:3478?transport=udp,turn:turn.ams.example.com:3478?transport=tcp,turns:turn.ams.example.com:5349?transport=tcp`. Every `joined` carries them with a credential minted for that session (coturn `use-auth-secret`), expiring with its access token. Needs `SFU_TURN_SECRET`.",
  },
  turnSecret: {
    env: 'SFU_TURN_SECRET',
    flag: 'turn-secret',
    schema: z.string().min(32, 'at least 32 characters'),
    doc: "The TURN server's `static-auth-secret` (coturn): signs the per-session TURN credentials. Required with `SFU_TURN_URLS`; at least 32 characters.",
  },
  tlsCert: {
    env: 'SFU_TLS_CERT',
    flag: 'tls-cert',
    schema: z.string().min(1),
    doc: 'PEM certificate chain: with `SFU_TLS_KEY`, the node serves HTTPS and WSS on `SFU_HTTP_PORT` itself (browsers open the camera only on a secure origin). Replaced files are reloaded without a restart. Unset: plain HTTP (behind a TLS proxy, or local).',
  },
  tlsKey: {
    env: 'SFU_TLS_KEY',
    flag: 'tls-key',
    schema: z.string().min(1),
    doc: 'PEM private key of `SFU_TLS_CERT`.',
  },
  maxParticipants: {
    env: 'SFU_MAX_PARTICIPANTS',
    flag: 'max-participants',
    schema: z.coerce.number().int().min(1).max(10_000),
    default: '100',
    doc: 'Participants per room; the next join gets `ROOM_FULL`.',
  },
  maxPublishBitrate: {
    env: 'SFU_MAX_PUBLISH_BITRATE',
    flag: 'max-publish-bitrate',
    schema: z.coerce.number().int().min(100_000).max(50_000_000),
    default: '3000000',
    doc: 'Bitrate (bit/s) the node tells publishers they may send per video track (REMB).',
  },
  pingIntervalMs: {
    env: 'SFU_PING_INTERVAL_MS',
    flag: 'ping-interval-ms',
    schema: z.coerce.number().int().min(200).max(60_000),
    default: '5000',
    doc: 'How often clients ping and the server sends websocket pings.',
  },
  pingTimeoutMs: {
    env: 'SFU_PING_TIMEOUT_MS',
    flag: 'ping-timeout-ms',
    schema: z.coerce.number().int().min(500).max(300_000),
    default: '15000',
    doc: 'Silence after which a session is ended (`heartbeat-timeout`). At least 2 ping intervals.',
  },
  redisUrl: {
    env: 'REDIS_URL',
    flag: 'redis-url',
    schema: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL'),
    doc: 'Redis for the cluster (registry, rooms, relay signalling). Unset: single-node mode with in-memory state.',
  },
  redisSentinels: {
    env: 'REDIS_SENTINELS',
    flag: 'redis-sentinels',
    schema: commaList.pipe(z.array(sentinelAddress).min(1, 'at least one host:port')),
    doc: 'Redis Sentinel: comma-separated `host:port` of the sentinels (`[v6]:port` for IPv6). The node asks them for the master `REDIS_SENTINEL_MASTER` and follows failovers; `REDIS_URL` then gives only the password, database and TLS (`redis://:pass@sentinel/0`), not the host. Unset: `REDIS_URL` is the server.',
  },
  redisSentinelMaster: {
    env: 'REDIS_SENTINEL_MASTER',
    flag: 'redis-sentinel-master',
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a Sentinel master name'),
    default: 'mymaster',
    doc: 'With `REDIS_SENTINELS`: the master name the sentinels monitor.',
  },
  redisSentinelPassword: {
    env: 'REDIS_SENTINEL_PASSWORD',
    flag: 'redis-sentinel-password',
    schema: z.string().min(1),
    doc: "With `REDIS_SENTINELS`: the sentinels' own password (their `requirepass`), if they have one. The master's is `REDIS_URL`'s.",
  },
  clusterSecret: {
    env: 'SFU_CLUSTER_SECRET',
    flag: 'cluster-secret',
    schema: z.string().min(32, 'at least 32 characters'),
    doc: 'Shared by every node and `sfu-directory`: signs relay signalling and the cluster state in Redis (node records, room sessions and events; HMAC-SHA256 with a key derived per use). Required with `REDIS_URL` unless `--dev`.',
  },
  latitude: {
    env: 'SFU_LAT',
    flag: 'lat',
    schema: z.coerce.number().min(-90).max(90),
    doc: "This node's latitude. Default: the `SFU_REGION` preset's (see `packages/common/src/regions.ts`).",
  },
  longitude: {
    env: 'SFU_LON',
    flag: 'lon',
    schema: z.coerce.number().min(-180).max(180),
    doc: "This node's longitude. Default: the `SFU_REGION` preset's.",
  },
  capacity: {
    env: 'SFU_CAPACITY',
    flag: 'capacity',
    schema: z.coerce.number().int().min(1).max(100_000),
    default: '500',
    doc: 'Participants this node takes; a full node is skipped by routing.',
  },
  geoipDb: {
    env: 'SFU_GEOIP_DB',
    flag: 'geoip-db',
    schema: commaList,
    doc: 'MMDB file(s) for GeoIP routing: GeoLite2/GeoIP2-City, or DB-IP Lite city (comma-separate its IPv4 and IPv6 files). Replaced files are reloaded. Unset: every caller gets `SFU_DEFAULT_REGION`.',
  },
  defaultRegion: {
    env: 'SFU_DEFAULT_REGION',
    flag: 'default-region',
    schema: z.string().regex(/^[a-z0-9-]{1,32}$/, 'a region id'),
    doc: "Where routing places callers GeoIP cannot locate (private, loopback, unknown addresses). Default: this node's region.",
  },
  trustProxy: {
    env: 'SFU_TRUST_PROXY',
    flag: 'trust-proxy',
    schema: commaList,
    doc: 'Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is believed. Unset: the socket address is the caller.',
  },
  registryTtlMs: {
    env: 'SFU_REGISTRY_TTL_MS',
    flag: 'registry-ttl-ms',
    schema: z.coerce.number().int().min(2_000).max(120_000),
    default: '10000',
    doc: "TTL of this node's registry record: a node that stops heartbeating disappears after it.",
  },
  heartbeatMs: {
    env: 'SFU_REGISTRY_HEARTBEAT_MS',
    flag: 'registry-heartbeat-ms',
    schema: z.coerce.number().int().min(250).max(60_000),
    default: '3000',
    doc: 'How often the record (and its load) is refreshed. Less than half the TTL.',
  },
  drainTimeoutMs: {
    env: 'SFU_DRAIN_TIMEOUT_MS',
    flag: 'drain-timeout-ms',
    schema: z.coerce.number().int().min(0).max(3_600_000),
    default: '30000',
    doc: 'On SIGTERM or `POST /v1/admin/drain`: how long to wait for sessions to move before exiting.',
  },
  peerTimeoutMs: {
    env: 'SFU_PEER_TIMEOUT_MS',
    flag: 'peer-timeout-ms',
    schema: z.coerce.number().int().min(2_000).max(120_000),
    default: '10000',
    doc: 'A PeerConnection that is failed, never connects, or sends no RTP or RTCP for this long ends its session (`peer-connection-failed`); a relay receiver is closed (and its tracks end).',
  },
  maxConcurrentHandshakes: {
    env: 'SFU_MAX_CONCURRENT_HANDSHAKES',
    flag: 'max-concurrent-handshakes',
    schema: z.coerce.number().int().min(1).max(1_000),
    default: '4',
    doc: 'PeerConnection set-ups (ICE and DTLS, about 40 ms of CPU each on both ends) in progress at once; more wait their turn, so a burst of joins queues instead of starving every handshake and the event loop.',
  },
  admissionTimeoutMs: {
    env: 'SFU_ADMISSION_TIMEOUT_MS',
    flag: 'admission-timeout-ms',
    schema: z.coerce.number().int().min(1_000).max(300_000),
    default: '30000',
    doc: 'How long a PeerConnection set-up may wait for its turn; past it, the `publish` gets `SERVICE_BUSY` (a subscriber offer waits again).',
  },
  webhookUrls: {
    env: 'SFU_WEBHOOK_URLS',
    flag: 'webhook-urls',
    schema: commaList.pipe(z.array(z.url({ protocol: /^https?$/ })).max(16)),
    doc: 'Where room events are POSTed (comma-separated http(s) URLs): signed with `SFU_WEBHOOK_KEY`, each sent once by the cluster, retried with back-off (README, Webhooks). Unset: no webhooks.',
  },
  webhookKey: {
    env: 'SFU_WEBHOOK_KEY',
    flag: 'webhook-key',
    schema: z.string().min(32, 'at least 32 characters'),
    doc: 'Signs webhook deliveries (HMAC-SHA256, header `x-geosfu-signature`); the receiver checks it with the same key. Required with `SFU_WEBHOOK_URLS`.',
  },
  logLevel: {
    env: 'SFU_LOG_LEVEL',
    flag: 'log-level',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    default: 'info',
    doc: 'pino log level.',
  },
} as const satisfies Record<string, Field>;

type Fields = typeof CONFIG_FIELDS;
type Parsed<K extends keyof Fields> = z.output<Fields[K]['schema']>;

export interface NodeConfig {
  readonly httpHost: string;
  readonly httpPort: number;
  /** A separate port for `/metrics` only; undefined: `/metrics` is served on `httpPort`. */
  readonly metricsPort: number | undefined;
  readonly nodeId: string;
  readonly region: string;
  readonly publicUrl: string | undefined;
  readonly apiKey: string;
  readonly apiSecret: string;
  readonly dev: boolean;
  readonly rtcPortRange: Parsed<'rtcPortRange'> | undefined;
  /** SO_RCVBUF for WebRTC UDP sockets, bytes; 0: the system's default. */
  readonly udpReceiveBuffer: number;
  readonly rtcHostAddresses: readonly string[] | undefined;
  readonly announcedIps: readonly string[];
  readonly iceServers: readonly IceServer[];
  /** This node's TURN URLs; empty: no TURN credentials are minted. */
  readonly turnUrls: readonly string[];
  /** coturn's static-auth-secret, set exactly when turnUrls is not empty. */
  readonly turnSecret: string | undefined;
  /** PEM paths: both set, the node serves HTTPS/WSS; both unset, plain HTTP. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly maxParticipants: number;
  readonly maxPublishBitrate: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly logLevel: Parsed<'logLevel'>;
  readonly redisUrl: string | undefined;
  readonly clusterSecret: string;
  /** Redis Sentinel: where the sentinels are; undefined: `redisUrl` is the server. */
  readonly redisSentinels: readonly { readonly host: string; readonly port: number }[] | undefined;
  readonly redisSentinelMaster: string;
  readonly redisSentinelPassword: string | undefined;
  /** Where this node is: SFU_LAT/SFU_LON, else the region preset; unknown for other regions. */
  readonly location: { readonly latitude: number; readonly longitude: number } | undefined;
  readonly capacity: number;
  readonly geoipDb: readonly string[] | undefined;
  readonly defaultRegion: string;
  readonly trustProxy: readonly string[];
  readonly registryTtlMs: number;
  readonly heartbeatMs: number;
  readonly drainTimeoutMs: number;
  readonly peerTimeoutMs: number;
  readonly maxConcurrentHandshakes: number;
  readonly admissionTimeoutMs: number;
  /** SFU_WEBHOOK_URLS: empty when webhooks are off. */
  readonly webhookUrls: readonly string[];
  readonly webhookKey: string | undefined;
}

export type ConfigKey = keyof Fields;

/**
 * Loads the node's configuration from environment variables and CLI flags (flags win),
 * validates every field at once and returns a frozen object. Throws SfuError CONFIG_INVALID
 * listing every bad field with what to change.
 */
/** The node's location, required in cluster mode: routing is by distance. */
export function requireLocation(config: NodeConfig): { latitude: number; longitude: number } {
  if (config.location) return config.location;
  if (config.redisUrl) {
    throw new SfuError(
      'CONFIG_INVALID',
      `region "${config.region}" has no preset location: set SFU_LAT and SFU_LON, or use a preset (${Object.keys(REGIONS).join(', ')})`,
    );
  }
  // A single node is the only choice whatever the distance; 0,0 stands in for "anywhere".
  return { latitude: 0, longitude: 0 };
}

export function loadConfig(
  argv: readonly string[] = [],
  env: Readonly<Record<string, string | undefined>> = process.env,
): NodeConfig {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const field of Object.values(CONFIG_FIELDS)) {
    options[field.flag] = { type: field.flag === 'dev' ? 'boolean' : 'string' };
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new SfuError(
      'CONFIG_INVALID',
      `${(error as Error).message}; see the README's configuration table`,
    );
  }

  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(CONFIG_FIELDS) as [ConfigKey, Field][]) {
    const raw = flags[f.flag] ?? env[f.env] ?? f.default;
    if (raw === undefined || raw === '') {
      out[key] = undefined;
      continue;
    }
    const result = f.schema.safeParse(raw);
    if (result.success) out[key] = result.data;
    else
      problems.push(
        `${f.env} (--${f.flag}) = ${JSON.stringify(raw)}: ${result.error.issues[0]?.message}`,
      );
  }

  const dev = out.dev === true;
  if (!dev && out.redisUrl !== undefined && out.clusterSecret === undefined) {
    problems.push(
      'SFU_CLUSTER_SECRET is required with REDIS_URL: the same secret of 32+ characters on every node',
    );
  }
  if (out.redisSentinels !== undefined && out.redisUrl === undefined) {
    problems.push(
      'REDIS_SENTINELS needs REDIS_URL too (it turns cluster mode on and gives the password and database): e.g. REDIS_URL=redis://:pass@sentinel/0',
    );
  }
  out.clusterSecret ??= DEV_CLUSTER_SECRET;
  if (dev) {
    out.apiKey ??= DEV_API_KEY;
    out.apiSecret ??= DEV_API_SECRET;
  } else {
    if (out.apiKey === undefined || out.apiSecret === undefined) {
      problems.push(
        'SFU_API_KEY and SFU_API_SECRET are required: set both (secret of at least 32 characters), or run with --dev for local development',
      );
    } else if (out.apiSecret === DEV_API_SECRET) {
      problems.push('SFU_API_SECRET is the public dev secret: set your own, or run with --dev');
    }
  }
  if (
    typeof out.pingIntervalMs === 'number' &&
    typeof out.pingTimeoutMs === 'number' &&
    out.pingTimeoutMs < 2 * out.pingIntervalMs
  ) {
    problems.push(
      'SFU_PING_TIMEOUT_MS must be at least twice SFU_PING_INTERVAL_MS, or a single late ping ends a session',
    );
  }
  if (
    typeof out.heartbeatMs === 'number' &&
    typeof out.registryTtlMs === 'number' &&
    out.heartbeatMs * 2 >= out.registryTtlMs
  ) {
    problems.push(
      'SFU_REGISTRY_HEARTBEAT_MS must be less than half of SFU_REGISTRY_TTL_MS, or one late heartbeat drops the node',
    );
  }
  if (
    typeof out.metricsPort === 'number' &&
    out.metricsPort !== 0 &&
    out.metricsPort === out.httpPort
  ) {
    problems.push(
      'SFU_METRICS_PORT must differ from SFU_HTTP_PORT (unset it to serve /metrics on the HTTP port)',
    );
  }
  const turnUrlCount = Array.isArray(out.turnUrls) ? out.turnUrls.length : 0;
  if (turnUrlCount > 0 !== (out.turnSecret !== undefined)) {
    problems.push(
      "set SFU_TURN_URLS and SFU_TURN_SECRET together (the secret is the TURN server's static-auth-secret), or neither",
    );
  }
  if ((out.tlsCert === undefined) !== (out.tlsKey === undefined)) {
    problems.push(
      'set SFU_TLS_CERT and SFU_TLS_KEY together (PEM files), or neither for plain HTTP',
    );
  }
  if (
    Array.isArray(out.webhookUrls) &&
    out.webhookUrls.length > 0 &&
    out.webhookKey === undefined
  ) {
    problems.push('SFU_WEBHOOK_KEY is required with SFU_WEBHOOK_URLS: receivers check signatures');
  }
  const region = typeof out.region === 'string' ? out.region : 'local';
  const preset = REGIONS[region];
  const lat = out.latitude as number | undefined;
  const lon = out.longitude as number | undefined;
  if ((lat === undefined) !== (lon === undefined))
    problems.push('set both SFU_LAT and SFU_LON, or neither');
  if (problems.length > 0) {
    throw new SfuError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
  out.nodeId ??= `${hostname()
    .replace(/[^a-zA-Z0-9._-]/g, '-')
    .slice(0, 50)}-${randomBytes(3).toString('hex')}`;
  out.announcedIps ??= [];
  out.turnUrls ??= [];
  out.trustProxy ??= [];
  out.webhookUrls ??= [];
  out.defaultRegion ??= region;
  out.location =
    lat !== undefined && lon !== undefined
      ? Object.freeze({ latitude: lat, longitude: lon })
      : preset
        ? Object.freeze({ latitude: preset.latitude, longitude: preset.longitude })
        : undefined;
  delete out.latitude;
  delete out.longitude;
  return Object.freeze(out) as unknown as NodeConfig;
}

/** The README's configuration table, generated from the schema so the two cannot drift. */
export function configMarkdownTable(): string {
  const rows = Object.values(CONFIG_FIELDS).map(
    (f: Field) =>
      `| \`${f.env}\` | \`--${f.flag}\` | ${f.default === undefined ? '' : `\`${f.default}\``} | ${f.doc} |`,
  );
  return ['| variable | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
