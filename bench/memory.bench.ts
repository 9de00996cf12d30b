/**
 * Memory: RSS and heap of one SFU node process per idle participant and per active
 * subscription, after forced GC, as deltas against the empty node in the same run; then the
 * leak check: 10 rounds of 25 joins and leaves, RSS / heap / file descriptors after each.
 *
 * GC is forced in the node process through its inspector (NODE_OPTIONS=--inspect on a local
 * port; HeapProfiler.collectGarbage over the DevTools protocol), and the heap is read there
 * with process.memoryUsage(); RSS and file descriptors come from /proc/<pid>.
 *
 *   npm run bench -- memory
 *   node --conditions=source --import tsx bench/memory.bench.ts   (prints, writes nothing)
 */
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { fetchDevToken } from '../packages/client/src/core/devToken.js';
import { sampleSum } from '../test/helpers/metrics.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { freePort } from '../test/helpers/ports.js';
import { type RawClient, rawClient } from '../test/helpers/ws.js';
import { Child, cpuSeconds, nowMs } from './fanout-common.js';
import {
  type BenchCell,
  type BenchColumn,
  type BenchResult,
  type BenchTarget,
  emitResult,
  finishedResult,
  Progress,
} from './lib.js';

const NAME = 'memory';
const ROOM = 'mem';
const PUBLISHER = 'pub';
const IDLE = 25;
const SUBSCRIBERS = 25;
const ROUNDS = 10;
const PER_ROUND = 25;
/** Zero growth, within these, from round 2 to round 10. */
const HEAP_TOLERANCE_MB = 2;
const FD_TOLERANCE = 3;
const SETTLE_MS = 2_000;
const POLL_MS = 50;
const WAIT_TIMEOUT_MS = 30_000;
const MB = 1024 * 1024;

const started = Date.now();
const progress = new Progress(`[${NAME}]`);

// ---------------------------------------------------------------------------------------
// The node's inspector

/** A minimal DevTools protocol client: one websocket, request → response by id. */
class Inspector {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: unknown };
      if (m.id === undefined) return;
      this.#pending.get(m.id)?.(m);
      this.#pending.delete(m.id);
    });
  }

  static async connect(port: number): Promise<Inspector> {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const url = list[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error('the node has no inspector target');
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  call<T>(method: string, params: object = {}): Promise<T> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (m) => {
        if (m.error) reject(new Error(`${method}: ${JSON.stringify(m.error)}`));
        else resolve(m.result as T);
      });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.#ws.terminate();
  }
}

interface Snapshot {
  rssMB: number;
  heapMB: number;
  externalMB: number;
  fds: number;
  participants: number;
  subscriptions: number;
}

async function snapshot(node: NodeProcess, inspector: Inspector): Promise<Snapshot> {
  // Twice, with a pause: the first collection frees what finalizers of the second release.
  await inspector.call('HeapProfiler.collectGarbage');
  await sleep(300);
  await inspector.call('HeapProfiler.collectGarbage');
  await sleep(200);
  const evaluated = await inspector.call<{ result: { value: string } }>('Runtime.evaluate', {
    expression: 'JSON.stringify(process.memoryUsage())',
    returnByValue: true,
  });
  const mem = JSON.parse(evaluated.result.value) as {
    rss: number;
    heapUsed: number;
    external: number;
  };
  const text = await (await fetch(`${node.metricsUrl}/metrics`)).text();
  return {
    rssMB: mem.rss / MB,
    heapMB: mem.heapUsed / MB,
    externalMB: mem.external / MB,
    fds: readdirSync(`/proc/${node.pid}/fd`).length,
    participants: sampleSum(text, 'sfu_participants'),
    subscriptions: sampleSum(text, 'sfu_subscriptions'),
  };
}

// ---------------------------------------------------------------------------------------
// Clients

async function waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_TIMEOUT_MS;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

async function waitParticipants(node: NodeProcess, n: number, subs: number): Promise<void> {
  await waitFor(`${n} participants, ${subs} subscriptions`, async () => {
    const text = await (await fetch(`${node.metricsUrl}/metrics`)).text();
    return (
      sampleSum(text, 'sfu_participants') === n && sampleSum(text, 'sfu_subscriptions') === subs
    );
  });
}

/** A signalling-only participant: a raw websocket, joined with autoSubscribe: false. */
async function idleJoin(node: NodeProcess, identity: string): Promise<RawClient> {
  const token = await fetchDevToken(node.url, { room: ROOM, identity });
  const c = await rawClient(node.url);
  c.send({ type: 'join', id: 'j', token, autoSubscribe: false });
  const reply = await c.waitFor(
    (m) => (m.type === 'joined' || m.type === 'error') && m.ref === 'j',
  );
  if (reply.type !== 'joined') throw new Error(`join failed: ${JSON.stringify(reply)}`);
  return c;
}

interface JoinResult {
  identity: string;
  joinedMs: number;
  keyframeMs: number;
  error?: string;
}

async function botRound(worker: Child, node: NodeProcess, prefix: string, count: number) {
  const results = await worker.call<JoinResult[]>('join', {
    url: node.url,
    room: ROOM,
    prefix,
    count,
    publisher: PUBLISHER,
    at: nowMs() + 20,
  });
  const failed = results.filter((r) => r.error);
  if (failed.length > 0) {
    throw new Error(`${failed.length}/${count} bots failed: ${failed[0]?.error}`);
  }
  return results;
}

// ---------------------------------------------------------------------------------------

interface Row {
  phase: string;
  case: string;
  s: Snapshot;
  vs?: Snapshot;
  per?: number;
  perLabel?: string;
}

async function main(): Promise<void> {
  const port = await freePort();
  progress.step('starting the node (inspector on a local port)');
  const node = await startNode({
    region: 'ams',
    nodeId: 'memory',
    env: { NODE_OPTIONS: `--inspect=127.0.0.1:${port}` },
  });
  const inspector = await Inspector.connect(port);
  const pub = new Child('./bot-worker.ts');
  const subs = new Child('./bot-worker.ts');
  const rows: Row[] = [];
  const rounds: Snapshot[] = [];
  const idle: RawClient[] = [];
  let clientCpu = { pub: 0, subs: 0 };
  try {
    await sleep(SETTLE_MS);
    const cold = await snapshot(node, inspector);
    rows.push({ phase: 'baseline', case: 'empty node, just started', s: cold });

    // Warm-up: every code path the measured phases take, once, so that lazily loaded modules,
    // compiled code and grown pools do not count as the first participant's memory.
    progress.step('warm-up: idle joins, a publisher and subscriber bots, then all leave');
    for (let i = 0; i < 5; i++) idle.push(await idleJoin(node, `warm-idle-${i}`));
    await pub.call('publish', { url: node.url, room: ROOM, identity: PUBLISHER });
    await botRound(subs, node, 'warm', 5);
    await subs.call('closeAll');
    await pub.call('closeAll');
    for (const c of idle.splice(0)) c.close();
    await waitParticipants(node, 0, 0);
    await sleep(SETTLE_MS);
    const empty = await snapshot(node, inspector);
    rows.push({
      phase: 'baseline',
      case: 'empty node after a warm-up round (the reference)',
      s: empty,
    });

    progress.step(`${IDLE} idle participants (raw websockets, autoSubscribe: false)`);
    for (let i = 0; i < IDLE; i++) idle.push(await idleJoin(node, `idle-${i}`));
    await waitParticipants(node, IDLE, 0);
    await sleep(SETTLE_MS);
    const withIdle = await snapshot(node, inspector);
    rows.push({
      phase: 'per idle participant',
      case: `${IDLE} signalling-only participants`,
      s: withIdle,
      vs: empty,
      per: IDLE,
      perLabel: 'participant',
    });
    for (const c of idle.splice(0)) c.close();
    await waitParticipants(node, 0, 0);

    progress.step('one publisher bot (VP8 + Opus)');
    await pub.call('publish', { url: node.url, room: ROOM, identity: PUBLISHER });
    await waitParticipants(node, 1, 0);
    await sleep(SETTLE_MS);
    const withPub = await snapshot(node, inspector);
    rows.push({
      phase: 'per subscription',
      case: 'one publisher, no subscriber',
      s: withPub,
      vs: empty,
    });

    progress.step(`${SUBSCRIBERS} subscriber bots on the publisher (forked worker)`);
    await botRound(subs, node, 'sub', SUBSCRIBERS);
    await sleep(SETTLE_MS);
    const withSubs = await snapshot(node, inspector);
    const nSubs = withSubs.subscriptions;
    rows.push({
      phase: 'per subscription',
      case: `+ ${SUBSCRIBERS} subscriber bots (${nSubs} subscriptions)`,
      s: withSubs,
      vs: withPub,
      per: SUBSCRIBERS,
      perLabel: 'subscriber',
    });
    rows.push({
      phase: 'per subscription',
      case: '  the same, per subscription (a track)',
      s: withSubs,
      vs: withPub,
      per: nSubs,
      perLabel: 'subscription',
    });
    await subs.call('closeAll');
    await waitParticipants(node, 1, 0);

    for (let r = 1; r <= ROUNDS; r++) {
      progress.step(`leak check round ${r}/${ROUNDS}: ${PER_ROUND} bots join, get media, leave`);
      await botRound(subs, node, `round${r}`, PER_ROUND);
      await subs.call('closeAll');
      await waitParticipants(node, 1, 0);
      await sleep(SETTLE_MS);
      const s = await snapshot(node, inspector);
      rounds.push(s);
      rows.push({ phase: 'leak check', case: `after round ${r}`, s, vs: rounds[1] });
    }
    clientCpu = { pub: cpuSeconds(pub.pid), subs: cpuSeconds(subs.pid) };
  } finally {
    progress.done();
    for (const c of idle) c.close();
    inspector.close();
    await Promise.allSettled([pub.call('close'), subs.call('close')]);
    await Promise.allSettled([pub.stop(), subs.stop()]);
    await node.stop();
  }
  emitResult(buildResult(rows, rounds, clientCpu));
}

function buildResult(
  rows: Row[],
  rounds: Snapshot[],
  clientCpu: { pub: number; subs: number },
): BenchResult {
  const columns: BenchColumn[] = [
    { key: 'phase', label: 'phase' },
    { key: 'case', label: 'case' },
    { key: 'participants', label: 'participants', format: 'int' },
    { key: 'subscriptions', label: 'subscriptions', format: 'int' },
    { key: 'rss', label: 'RSS MB', format: { decimals: 1 } },
    { key: 'heap', label: 'heap used MB', format: { decimals: 2 } },
    { key: 'external', label: 'external MB', format: { decimals: 2 } },
    { key: 'fds', label: 'fds', format: 'int' },
    { key: 'dRss', label: 'Δ RSS', format: { significant: 3 } },
    { key: 'dHeap', label: 'Δ heap', format: { significant: 3 } },
    { key: 'dFds', label: 'Δ fds', format: { significant: 2 } },
    { key: 'unit', label: 'Δ per' },
  ];
  const out: Record<string, BenchCell>[] = rows.map((r) => {
    const row: Record<string, BenchCell> = {
      phase: r.phase,
      case: r.case,
      participants: r.s.participants,
      subscriptions: r.s.subscriptions,
      rss: r.s.rssMB,
      heap: r.s.heapMB,
      external: r.s.externalMB,
      fds: r.s.fds,
      dRss: null,
      dHeap: null,
      dFds: null,
      unit: null,
    };
    if (r.vs) {
      const per = r.per ?? 1;
      // Per unit in KB; whole-step deltas (per = 1) in MB.
      const scale = r.per ? 1024 : 1;
      row.dRss = ((r.s.rssMB - r.vs.rssMB) * scale) / per;
      row.dHeap = ((r.s.heapMB - r.vs.heapMB) * scale) / per;
      row.dFds = (r.s.fds - r.vs.fds) / per;
      row.unit = r.per ? `KB / ${r.perLabel}` : 'MB, whole step';
    }
    return row;
  });
  const targets: BenchTarget[] = [];
  const notes: string[] = [];
  const r2 = rounds[1];
  const r10 = rounds[ROUNDS - 1];
  if (r2 && r10) {
    const dHeap = r10.heapMB - r2.heapMB;
    const dRss = r10.rssMB - r2.rssMB;
    const dFds = r10.fds - r2.fds;
    targets.push({
      what: `leak check, growth from round 2 to round ${ROUNDS} (${PER_ROUND} joins and leaves per round): heap used after forced GC`,
      target: `zero growth: < ${HEAP_TOLERANCE_MB} MB`,
      value: `${dHeap >= 0 ? '+' : ''}${dHeap.toFixed(2)} MB (${r2.heapMB.toFixed(2)} → ${r10.heapMB.toFixed(2)} MB)`,
      pass: dHeap < HEAP_TOLERANCE_MB,
    });
    targets.push({
      what: `leak check, growth from round 2 to round ${ROUNDS}: open file descriptors`,
      target: `zero growth: < ${FD_TOLERANCE}`,
      value: `${dFds >= 0 ? '+' : ''}${dFds} (${r2.fds} → ${r10.fds})`,
      pass: dFds < FD_TOLERANCE,
    });
    const heaps = rounds.map((s) => s.heapMB.toFixed(2)).join(', ');
    // Least-squares slope of heap used over rounds 2..ROUNDS: a trend the endpoints may hide.
    const xs = rounds.slice(1).map((_, i) => i + 2);
    const ys = rounds.slice(1).map((s) => s.heapMB);
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    const slope =
      xs.reduce((a, x, i) => a + (x - mx) * ((ys[i] ?? 0) - my), 0) /
      xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    notes.push(
      `Leak-check trend: a least-squares line through heap used after rounds 2–${ROUNDS} rises ${slope >= 0 ? '+' : ''}${(slope * 1024).toFixed(0)} KB per round (${((slope * MB) / PER_ROUND / 1024).toFixed(1)} KB per join and leave). Within the tolerance over this run${slope > 0 ? `, but a steady rise at that rate would cross ${HEAP_TOLERANCE_MB} MB after about ${Math.ceil(HEAP_TOLERANCE_MB / slope)} rounds (${Math.ceil(HEAP_TOLERANCE_MB / slope) * PER_ROUND} joins); only a longer run tells a small leak from caches that fill up and stop (V8 code, metric label sets, pools)` : ''}.`,
    );
    notes.push(
      `Leak check: RSS grew ${dRss >= 0 ? '+' : ''}${dRss.toFixed(1)} MB from round 2 to round ${ROUNDS} (not a target: RSS also holds freed pages the allocator keeps). Heap used after each round, MB: ${heaps}.`,
    );
  }
  notes.push(
    `Method: before each reading the node's heap is collected twice through its inspector (NODE_OPTIONS=--inspect=127.0.0.1:<free port>; DevTools HeapProfiler.collectGarbage, 300 ms apart), then RSS, heap used and external come from process.memoryUsage() evaluated in the node, file descriptors from /proc/<pid>/fd, participants and subscriptions from /metrics. Each reading follows ${SETTLE_MS / 1000} s of idling after the state was reached. The inspector itself holds some memory and one socket; it is the same in every row, so it cancels out of the deltas.`,
    'RSS deltas per participant are below the resolution of this method and can come out negative: each forced GC also returns pages that earlier phases (the warm-up, the previous phase) left in the process, and the allocator keeps or returns whole pages; 25 participants move RSS by less than that churn. Heap used (V8 objects) and external (ArrayBuffers, native buffers V8 knows of) are the numbers to read per participant; memory werift or libuv holds outside V8 appears only in RSS.',
    `Deltas: "per idle participant" against the empty node after the warm-up (reference row); "per subscription" against the node with the publisher alone. A subscriber bot is a participant with a subscriber PeerConnection (ICE, DTLS, SRTP) receiving the publisher's video and audio, so its delta includes an idle participant's; the per-subscription row divides the same delta by the node's sfu_subscriptions (one per track). Leak-check deltas are against round 2, in MB.`,
    `Setup: one node process (--dev, SFU_LOG_LEVEL=info) on 127.0.0.1. Idle participants are raw websockets in the benchmark process (dev token, join with autoSubscribe: false, no PeerConnection). The publisher bot (VP8 + Opus, key frames only on PLI) runs in one forked worker, the subscriber bots in another; they join ${PER_ROUND} at once and each waits for its first video key frame before the round's bots all close; the node is back to 1 participant, 0 subscriptions before each reading. A warm-up round (5 idle joins, publisher, 5 subscriber bots) runs before the reference row, so that lazily loaded code and first-use pools are not charged to the first participant; the just-started row shows what that warm-up cost. Client CPU over the run: publisher worker ${clientCpu.pub.toFixed(1)} s, subscriber worker ${clientCpu.subs.toFixed(1)} s.`,
  );
  return finishedResult(NAME, 'Memory per participant and the leak check', started, {
    columns,
    rows: out,
    targets,
    notes,
  });
}

await main();
