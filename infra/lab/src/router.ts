/**
 * The WAN emulator: a user-space router for the lab's VXLAN overlay. Every lab host has a
 * kernel VXLAN device whose only remote is this process (UDP 4789 in the router namespace).
 * Each datagram carries one Ethernet frame; the router reads the inner IPv4 destination, runs
 * the (source host -> destination host) link model on it, and re-sends the datagram unchanged
 * to the destination host's VXLAN endpoint when its time is due.
 *
 * Run as a process (`node router.js <config.json>`): prints `{"type":"ready"}` once bound;
 * stdin lines `stats` (answers one JSON line), `reset` (clears counters) and `exit`.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { seededRandom } from '@geosfu/common';
import { z } from 'zod';
import { LinkModel } from './linkModel.js';
import { HOST_NAMES, LinkParams } from './profiles.js';

export const VXLAN_PORT = 4789;
/** VXLAN header (8) + inner Ethernet header (14): the inner IPv4 header starts here. */
const INNER_IP = 22;
const ETHERTYPE_AT = 20;
const ETHERTYPE_IPV4 = 0x0800;

export const RouterConfig = z.strictObject({
  hosts: z.array(
    z.strictObject({
      name: z.enum(HOST_NAMES),
      /** The host's VXLAN endpoint (its underlay address). */
      underlay: z.ipv4(),
      /** Overlay (inner) addresses that belong to this host. */
      overlay: z.array(z.ipv4()).min(1),
    }),
  ),
  links: z.array(
    z.strictObject({ from: z.enum(HOST_NAMES), to: z.enum(HOST_NAMES), params: LinkParams }),
  ),
  seed: z.number().int().default(1),
  /**
   * Below this many ms to the next departure the router polls (setImmediate) instead of
   * sleeping on a timer, whose resolution is 1 ms. 0 = timers only (least CPU).
   */
  spinMs: z.number().min(0).max(5).default(1),
  /** Receive buffer of the socket, bytes (the kernel caps it at net.core.rmem_max * 2). */
  receiveBufferBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
});
export type RouterConfig = z.input<typeof RouterConfig>;

/** Lateness histogram: 10 us buckets up to 50 ms, the last one open. */
const BUCKET_US = 10;
const BUCKETS = 5_000;

class Lateness {
  readonly counts = new Uint32Array(BUCKETS + 1);
  n = 0;
  add(us: number): void {
    const i = Math.min(BUCKETS, Math.max(0, Math.floor(us / BUCKET_US)));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.n++;
  }
  percentile(p: number): number | null {
    if (this.n === 0) return null;
    const rank = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return (i + 0.5) * BUCKET_US;
    }
    return null;
  }
  reset(): void {
    this.counts.fill(0);
    this.n = 0;
  }
}

interface Queued {
  packet: Buffer;
  dueMs: number;
}

class Link {
  readonly model: LinkModel;
  readonly queue: Queued[] = [];
  head = 0;
  forwarded = 0;
  bytes = 0;
  lost = 0;
  queueDropped = 0;
  readonly lateness = new Lateness();

  constructor(
    readonly from: string,
    readonly to: string,
    readonly toAddress: string,
    model: LinkModel,
  ) {
    this.model = model;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  shift(): Queued | undefined {
    const item = this.queue[this.head];
    if (item === undefined) return undefined;
    this.queue[this.head++] = undefined as unknown as Queued;
    // Compact now and then instead of Array.shift() on every packet.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return item;
  }
}

export interface LinkStats {
  from: string;
  to: string;
  forwarded: number;
  bytes: number;
  lost: number;
  queueDropped: number;
  queued: number;
  lateUsP50: number | null;
  lateUsP99: number | null;
  lateUsMax: number | null;
}

export interface RouterStats {
  type: 'stats';
  uptimeMs: number;
  received: number;
  noRoute: number;
  notIpv4: number;
  unknownSource: number;
  cpuMs: { user: number; system: number };
  links: LinkStats[];
}

function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

export class WanRouter {
  readonly #socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  readonly #bySource = new Map<string, number>();
  readonly #byOverlay = new Map<number, number>();
  /** links[src][dst] */
  readonly #links: (Link | undefined)[][] = [];
  readonly #active: Link[] = [];
  readonly #spinMs: number;
  readonly #started = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #received = 0;
  #noRoute = 0;
  #notIpv4 = 0;
  #unknownSource = 0;
  #closed = false;
  readonly #receiveBufferBytes: number;

  constructor(input: RouterConfig) {
    const config = RouterConfig.parse(input);
    this.#spinMs = config.spinMs;
    this.#receiveBufferBytes = config.receiveBufferBytes;
    const random = seededRandom(config.seed);
    const index = new Map<string, number>();
    config.hosts.forEach((host, i) => {
      index.set(host.name, i);
      this.#bySource.set(host.underlay, i);
      for (const ip of host.overlay) this.#byOverlay.set(ipToInt(ip), i);
      this.#links.push([]);
    });
    for (const link of config.links) {
      const from = index.get(link.from);
      const to = index.get(link.to);
      const toHost = to === undefined ? undefined : config.hosts[to];
      if (from === undefined || to === undefined || toHost === undefined) continue;
      const row = this.#links[from];
      if (row) {
        row[to] = new Link(link.from, link.to, toHost.underlay, new LinkModel(link.params, random));
      }
    }
    for (const row of this.#links) for (const link of row) if (link) this.#active.push(link);
    this.#socket.on('message', (packet, rinfo) => this.#onPacket(packet, rinfo.address));
  }

  async listen(port = VXLAN_PORT, address = '0.0.0.0'): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind(port, address, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    try {
      this.#socket.setRecvBufferSize(this.#receiveBufferBytes);
      this.#socket.setSendBufferSize(this.#receiveBufferBytes);
    } catch {
      // Capped by the kernel; the default still works at lab rates.
    }
  }

  #onPacket(packet: Buffer, source: string): void {
    this.#received++;
    const src = this.#bySource.get(source);
    if (src === undefined) {
      this.#unknownSource++;
      return;
    }
    if (packet.length < INNER_IP + 20 || packet.readUInt16BE(ETHERTYPE_AT) !== ETHERTYPE_IPV4) {
      this.#notIpv4++;
      return;
    }
    const dst = this.#byOverlay.get(packet.readUInt32BE(INNER_IP + 16));
    const link = dst === undefined ? undefined : this.#links[src]?.[dst];
    if (!link) {
      this.#noRoute++;
      return;
    }
    const verdict = link.model.admit(performance.now(), packet.length - INNER_IP);
    if ('drop' in verdict) {
      if (verdict.drop === 'loss') link.lost++;
      else link.queueDropped++;
      return;
    }
    link.queue.push({ packet, dueMs: verdict.dueMs });
    if (link.pending === 1) this.#schedule();
  }

  /** Sends what is due and arms the wake-up for the next departure. */
  #pump = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    if (this.#closed) return;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const link of this.#active) {
      for (let item = link.queue[link.head]; item !== undefined; item = link.queue[link.head]) {
        if (item.dueMs > now) {
          if (item.dueMs < next) next = item.dueMs;
          break;
        }
        link.shift();
        link.lateness.add((now - item.dueMs) * 1000);
        link.forwarded++;
        link.bytes += item.packet.length - INNER_IP;
        this.#socket.send(item.packet, VXLAN_PORT, link.toAddress);
      }
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next - performance.now());
  };

  #schedule(): void {
    // A new head may be due earlier than the armed wake-up: re-arm from scratch.
    if (this.#immediate) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    let next = Number.POSITIVE_INFINITY;
    for (const link of this.#active) {
      const item = link.queue[link.head];
      if (item !== undefined && item.dueMs < next) next = item.dueMs;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next - performance.now());
  }

  #arm(waitMs: number): void {
    if (waitMs <= this.#spinMs) {
      this.#immediate = setImmediate(this.#pump);
    } else {
      // Timers have 1 ms resolution and may fire up to ~1 ms late: wake early, then poll.
      this.#timer = setTimeout(this.#pump, Math.max(1, Math.floor(waitMs - this.#spinMs)));
    }
  }

  stats(): RouterStats {
    const cpu = process.cpuUsage();
    return {
      type: 'stats',
      uptimeMs: Math.round(performance.now() - this.#started),
      received: this.#received,
      noRoute: this.#noRoute,
      notIpv4: this.#notIpv4,
      unknownSource: this.#unknownSource,
      cpuMs: { user: Math.round(cpu.user / 1000), system: Math.round(cpu.system / 1000) },
      links: this.#active.map((l) => ({
        from: l.from,
        to: l.to,
        forwarded: l.forwarded,
        bytes: l.bytes,
        lost: l.lost,
        queueDropped: l.queueDropped,
        queued: l.pending,
        lateUsP50: l.lateness.percentile(50),
        lateUsP99: l.lateness.percentile(99),
        lateUsMax: l.lateness.percentile(100),
      })),
    };
  }

  resetStats(): void {
    this.#received = 0;
    this.#noRoute = 0;
    this.#notIpv4 = 0;
    this.#unknownSource = 0;
    for (const l of this.#active) {
      l.forwarded = 0;
      l.bytes = 0;
      l.lost = 0;
      l.queueDropped = 0;
      l.lateness.reset();
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#socket.close();
  }
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: router <config.json>\n');
    process.exit(2);
  }
  const parsed = RouterConfig.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    process.stderr.write(`router: invalid config ${path}: ${z.prettifyError(parsed.error)}\n`);
    process.exit(2);
  }
  const router = new WanRouter(parsed.data);
  await router.listen();
  const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  write({ type: 'ready', pid: process.pid });
  const stop = () => {
    router.close();
    process.exit(0);
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = line.trim();
    if (command === 'stats') write(router.stats());
    else if (command === 'reset') router.resetStats();
    else if (command === 'exit') stop();
    else if (command !== '') write({ type: 'error', message: `unknown command "${command}"` });
  });
  // The lab owns this process: when its stdin closes (the parent died), stop.
  lines.on('close', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(`router: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
