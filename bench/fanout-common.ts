/**
 * What the fan-out benchmark's processes share: the probe packets the publisher sends, the
 * receivers' per-step counting and latency histogram, the hand-written SRTP-like framing of
 * the runtime-ceiling baseline, /proc CPU readings and a tiny IPC request helper.
 */

import { type ChildProcess, fork } from 'node:child_process';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setUdpReceiveBuffer } from '@geosfu/media';
import type { RTCPeerConnection } from 'werift';
import { PROBE_SIZE } from '../packages/client/src/bot/packetizer.js';

/** RTP payload bytes: with the 12-byte header and werift's mid extension ~1200 on the wire. */
export const PAYLOAD_SIZE = 1180;
/** 'FOUT', at offset 8 of the payload, after the VP8 descriptor and frame header. */
const MAGIC = 0x464f5554;
const MAGIC_AT = 8;

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A VP8-looking payload (descriptor, interframe or keyframe header) carrying the step number
 * and the packet's index in the step, and the bots' probe trailer (send time) at the end.
 */
export function buildPayload(step: number, index: number, keyframe: boolean): Buffer {
  const p = Buffer.alloc(PAYLOAD_SIZE);
  p[0] = 0x90;
  p[1] = 0x80;
  p[2] = 0x80 | ((index >> 8) & 0x7f);
  p[3] = index & 0xff;
  p[4] = 0x10 | (keyframe ? 0 : 1);
  if (keyframe) {
    p[7] = 0x9d;
  }
  p.writeUInt32BE(MAGIC, MAGIC_AT);
  p.writeUInt32BE(step >>> 0, MAGIC_AT + 4);
  p.writeUInt32BE(index >>> 0, MAGIC_AT + 8);
  // Same layout as the bots' probe (packetizer.ts writeProbe): magic, send time, frame.
  const at = PAYLOAD_SIZE - PROBE_SIZE;
  p.writeUInt32BE(0x47534642, at);
  p.writeDoubleBE(nowMs(), at + 4);
  p.writeUInt32BE(index >>> 0, at + 12);
  return p;
}

/** 10 µs buckets up to 200 ms, the last one for everything above. */
const BUCKET_US = 10;
const BUCKETS = 20_001;

/** Counts a receiver's packets of the current step and their one-way latency. */
export class StepCounter {
  step = -1;
  count = 0;
  other = 0;
  hist = new Uint32Array(BUCKETS);

  begin(step: number): void {
    this.step = step;
    this.count = 0;
    this.other = 0;
    this.hist.fill(0);
  }

  /** Called with each received payload (decrypted). */
  onPayload(payload: Buffer): void {
    const arrival = nowMs();
    if (payload.length !== PAYLOAD_SIZE || payload.readUInt32BE(MAGIC_AT) !== MAGIC) return;
    if (payload.readUInt32BE(MAGIC_AT + 4) !== this.step) {
      this.other++;
      return;
    }
    this.count++;
    const sent = payload.readDoubleBE(PAYLOAD_SIZE - PROBE_SIZE + 4);
    const us = Math.max(0, (arrival - sent) * 1000);
    const bucket = Math.min(BUCKETS - 1, Math.floor(us / BUCKET_US));
    this.hist[bucket] = (this.hist[bucket] as number) + 1;
  }
}

/** Adds histograms up. */
export function mergeHist(into: number[], hist: ArrayLike<number>): number[] {
  if (into.length === 0) return Array.from(hist);
  for (let i = 0; i < hist.length; i++) into[i] = (into[i] as number) + (hist[i] as number);
  return into;
}

/** A percentile of a histogram, ms (bucket midpoint); NaN when empty. */
export function histPercentileMs(hist: readonly number[], p: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i] as number;
    if (seen >= rank) return ((i + 0.5) * BUCKET_US) / 1000;
  }
  return Number.NaN;
}

// ---------------------------------------------------------------------------------------
// SRTP-like framing of the ceiling baseline: RTP header (AAD) | AES-128-GCM ciphertext | tag.

export function keyFor(label: string): KeyObject {
  return createSecretKey(createHash('sha256').update(`fanout-${label}`).digest().subarray(0, 16));
}

const iv = Buffer.alloc(12);
function setIv(header: Buffer): Buffer {
  // SSRC and sequence number, as SRTP's IV is (without the ROC and salt: a benchmark).
  header.copy(iv, 2, 8, 12);
  header.copy(iv, 10, 2, 4);
  return iv;
}

export function rtpHeader(ssrc: number, seq: number, timestamp: number): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = 96;
  h.writeUInt16BE(seq & 0xffff, 2);
  h.writeUInt32BE(timestamp >>> 0, 4);
  h.writeUInt32BE(ssrc >>> 0, 8);
  return h;
}

/** Encrypts `payload` under `header`; returns the pieces to hand to socket.send. */
export function seal(key: KeyObject, header: Buffer, payload: Buffer): Buffer[] {
  const c = createCipheriv('aes-128-gcm', key, setIv(header), { authTagLength: 16 });
  c.setAAD(header);
  const body = c.update(payload);
  c.final();
  return [header, body, c.getAuthTag()];
}

/** Decrypts a whole packet; undefined when it does not authenticate. */
export function open(key: KeyObject, packet: Buffer): Buffer | undefined {
  if (packet.length < 12 + 16) return undefined;
  const header = packet.subarray(0, 12);
  const d = createDecipheriv('aes-128-gcm', key, setIv(header), { authTagLength: 16 });
  d.setAAD(header);
  const body = d.update(packet.subarray(12, packet.length - 16));
  d.setAuthTag(packet.subarray(packet.length - 16));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return body;
}

// ---------------------------------------------------------------------------------------
// Processes

const CLK_TCK = 100;

/** utime + stime of a process, seconds (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * SO_RCVBUF of every benchmark socket, forwarders' and clients' alike: the node's default
 * (SFU_UDP_RECEIVE_BUFFER). With Linux's 208 KiB, a client or forwarder busy for a few tens of
 * milliseconds drops packets, and the ladder stops at a loss that says nothing about the
 * forwarder's cost.
 */
export const BENCH_UDP_BUFFER = 1024 * 1024;

/** Gives `pc`'s UDP sockets BENCH_UDP_BUFFER (call once its transports exist). */
export function enlargeBuffers(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports) setUdpReceiveBuffer(transport, BENCH_UDP_BUFFER);
}

/**
 * The kernel's UDP drop counters (/proc/net/snmp, all sockets of the host): datagrams dropped
 * because a receiver's socket buffer was full, and sends refused for a full send buffer.
 */
export function udpDrops(): { rcvbuf: number; sndbuf: number } {
  const lines = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(' ');
  const values = (lines[1] ?? '').split(' ').map(Number);
  const value = (name: string) => values[names.indexOf(name)] ?? 0;
  return { rcvbuf: value('RcvbufErrors'), sndbuf: value('SndbufErrors') };
}

/** Datagrams dropped so far by each open IPv4 UDP socket of the host, by local port. */
export function udpDropsByPort(): Map<number, number> {
  const drops = new Map<number, number>();
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (!local || f.length < 13) continue;
    const port = Number.parseInt(local.split(':')[1] ?? '', 16);
    drops.set(port, (drops.get(port) ?? 0) + Number(f[f.length - 1]));
  }
  return drops;
}

type Message = { id: number; ok: boolean; value?: unknown; error?: string };

/** A forked TypeScript child (tsx) answering `{ id, cmd, args }` requests over IPC. */
export class Child {
  readonly proc: ChildProcess;
  #next = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  readonly exited: Promise<void>;

  constructor(file: string, args: string[] = []) {
    this.proc = fork(fileURLToPath(new URL(file, import.meta.url)), args, {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (raw) => {
      const m = raw as Message;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error));
    });
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', () => {
        for (const p of this.#pending.values()) p.reject(new Error(`${file} exited`));
        this.#pending.clear();
        resolve();
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  call<T>(cmd: string, args: unknown = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd, args });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The child's side: answers requests with `handlers[cmd](args)`. */
export function serve(handlers: Record<string, (args: never) => unknown>): void {
  process.on('message', async (raw) => {
    const { id, cmd, args } = raw as { id: number; cmd: string; args: never };
    try {
      const handler = handlers[cmd];
      if (!handler) throw new Error(`unknown command ${cmd}`);
      const value = await handler(args);
      process.send?.({ id, ok: true, value });
    } catch (error) {
      process.send?.({ id, ok: false, error: (error as Error).stack ?? String(error) });
    }
  });
  // The parent's end of the pipe closing means the benchmark is gone: leave too.
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------
// The selection part (bench/fanout-select.ts), as the parent asks for and reads it.

export type SelectMode = 'passthrough' | 'settled' | 'rewrite' | 'switching';
export const SELECT_MODES: readonly SelectMode[] = [
  'passthrough',
  'settled',
  'rewrite',
  'switching',
];
/** switching: each sink's target moves to another layer every this many frames. */
export const SWITCH_EVERY_FRAMES = 15;

export interface SelectResult {
  mode: SelectMode;
  n: number;
  /** CPU µs per input packet (one Publication.forward to N sinks), median round. */
  usPerOp: number;
  /** (slowest - fastest round) / median. */
  spread: number;
  /** Packets the sinks sent per input packet, over the whole measurement. */
  sentPerInput: number;
  /** Layer switches per 1000 packets sent. */
  switchesPerK: number;
}
