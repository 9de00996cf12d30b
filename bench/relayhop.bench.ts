/**
 * Relay hop: the same stream through two nodes (publisher on A, 5 subscribers on B, the
 * packets crossing A's relay link to B) against one node (publisher and subscribers on A), at
 * a fixed rate of ~1200-byte video-like packets: the extra one-way latency and the CPU each
 * node spends per relayed packet. The clients are the fan-out benchmark's (bench/fanout-client.ts)
 * in forked processes; both nodes share one redis-server.
 *
 *   npm run bench -- relayhop
 *   node --conditions=source --import tsx bench/relayhop.bench.ts   (prints, writes nothing)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sampleSum } from '../test/helpers/metrics.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { type RedisServer, startRedis } from '../test/helpers/redis.js';
import { Child, cpuSeconds, histPercentileMs, mergeHist, PAYLOAD_SIZE } from './fanout-common.js';
import {
  type BenchCell,
  type BenchColumn,
  type BenchResult,
  type BenchTarget,
  emitResult,
  finishedResult,
  Progress,
} from './lib.js';

const NAME = 'relayhop';
const SUBSCRIBERS = 5;
/** Input packets/s from the publisher (forwarded: × SUBSCRIBERS). */
const RATE = 500;
const STEP_MS = 3_000;
const STEPS = 3;
const DRAIN_MS = 400;
const IDLE_MS = 2_000;
const SATURATED = 0.9;

const started = Date.now();
const progress = new Progress(`[${NAME}]`);

interface Measured {
  label: string;
  sent: number;
  received: number;
  loss: number;
  wallS: number;
  p50: number;
  p99: number;
  cpuA: number;
  cpuB: number;
  idleA: number;
  idleB: number;
  clientCpu: number[];
  relayIn: number;
}

async function metrics(node: NodeProcess): Promise<string> {
  return (await fetch(`${node.metricsUrl}/metrics`)).text();
}

/** CPU seconds per second of each pid over `ms` of doing nothing. */
async function idleCpu(pids: number[], ms: number): Promise<number[]> {
  const c0 = pids.map(cpuSeconds);
  await sleep(ms);
  return pids.map((p, i) => (cpuSeconds(p) - (c0[i] ?? 0)) / (ms / 1000));
}

async function step(
  pub: Child,
  subs: Child,
  nodes: [NodeProcess, NodeProcess],
  stepNo: number,
  rate: number,
  durationMs: number,
) {
  await subs.call('begin', { step: stepNo });
  const pids = [...nodes.map((n) => n.pid), pub.pid, subs.pid];
  const c0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  const { sent } = await pub.call<{ sent: number }>('run', { step: stepNo, rate, durationMs });
  await sleep(DRAIN_MS);
  const wallS = (performance.now() - t0) / 1000;
  const cpu = pids.map((p, i) => cpuSeconds(p) - (c0[i] ?? 0));
  const end = await subs.call<{ count: number; hist: number[] }>('end');
  return { sent, received: end.count, hist: end.hist, wallS, cpu };
}

async function runCase(
  label: string,
  a: NodeProcess,
  b: NodeProcess,
  subNode: NodeProcess,
  firstStep: number,
): Promise<Measured> {
  const pub = new Child('./fanout-client.ts');
  const subs = new Child('./fanout-client.ts');
  try {
    await pub.call('publisher', { mode: 'sfu', url: a.url });
    await subs.call('subscribers', {
      mode: 'sfu',
      count: SUBSCRIBERS,
      offset: 0,
      url: subNode.url,
    });
    // Warm-up: every subscriber receives (DTLS up, key frame seen) before timing.
    let ok = false;
    for (let t = 0; t < 10 && !ok; t++) {
      const w = await step(pub, subs, [a, b], firstStep, 100, 1_000);
      ok = w.received >= w.sent * SUBSCRIBERS * 0.999;
    }
    if (!ok) throw new Error(`${label}: the subscribers did not all receive during the warm-up`);
    await step(pub, subs, [a, b], firstStep + 1, RATE, 1_000);
    const [idleA, idleB] = await idleCpu([a.pid, b.pid], IDLE_MS);
    const before = await metrics(b);
    let sent = 0;
    let received = 0;
    let wallS = 0;
    let hist: number[] = [];
    const cpu = [0, 0, 0, 0];
    for (let k = 0; k < STEPS; k++) {
      progress.detail(`step ${k + 1}/${STEPS}`);
      const s = await step(pub, subs, [a, b], firstStep + 2 + k, RATE, STEP_MS);
      sent += s.sent;
      received += s.received;
      wallS += s.wallS;
      hist = mergeHist(hist, s.hist);
      s.cpu.forEach((c, i) => {
        cpu[i] = (cpu[i] ?? 0) + c;
      });
    }
    const after = await metrics(b);
    const relayIn =
      sampleSum(after, 'sfu_packets_total', { direction: 'in', kind: 'video', path: 'relay' }) -
      sampleSum(before, 'sfu_packets_total', { direction: 'in', kind: 'video', path: 'relay' });
    return {
      label,
      sent,
      received,
      loss: Math.max(0, 1 - received / (sent * SUBSCRIBERS)),
      wallS,
      p50: histPercentileMs(hist, 50),
      p99: histPercentileMs(hist, 99),
      cpuA: cpu[0] ?? 0,
      cpuB: cpu[1] ?? 0,
      idleA: idleA ?? 0,
      idleB: idleB ?? 0,
      clientCpu: [(cpu[2] ?? 0) / wallS, (cpu[3] ?? 0) / wallS],
      relayIn,
    };
  } finally {
    await Promise.allSettled([pub.call('close'), subs.call('close')]);
    await Promise.allSettled([pub.stop(), subs.stop()]);
  }
}

async function main(): Promise<void> {
  progress.step('starting redis-server and two nodes (ams = A, hcm = B)');
  let redis: RedisServer | undefined;
  const nodes: NodeProcess[] = [];
  const cases: Measured[] = [];
  try {
    redis = await startRedis();
    const cluster = { REDIS_URL: redis.url, SFU_DEFAULT_REGION: 'ams' };
    const [a, b] = await Promise.all([
      startNode({ region: 'ams', nodeId: 'node-a', env: cluster }),
      startNode({ region: 'hcm', nodeId: 'node-b', env: cluster }),
    ]);
    nodes.push(a, b);
    progress.step(`one node: publisher and ${SUBSCRIBERS} subscribers on A, ${RATE} pkt/s in`);
    cases.push(await runCase('one node: publisher and subscribers on A', a, b, a, 100));
    await sleep(1_000);
    progress.step(`relay hop: publisher on A, ${SUBSCRIBERS} subscribers on B, ${RATE} pkt/s in`);
    cases.push(await runCase('relay hop: publisher on A, subscribers on B', a, b, b, 200));
    await sleep(1_000);
    progress.step('one node again (order check)');
    cases.push(await runCase('one node again: publisher and subscribers on A', a, b, a, 300));
  } finally {
    progress.done();
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
  }
  emitResult(buildResult(cases));
}

function buildResult(cases: Measured[]): BenchResult {
  const columns: BenchColumn[] = [
    { key: 'case', label: 'case' },
    { key: 'in', label: 'in pkt/s', format: 'int' },
    { key: 'fwd', label: 'delivered pkt/s (all subs)', format: 'int' },
    { key: 'loss', label: 'loss', format: { decimals: 2 }, suffix: ' %' },
    { key: 'p50', label: 'lat p50 ms', format: { decimals: 2 } },
    { key: 'p99', label: 'lat p99 ms', format: { decimals: 2 } },
    { key: 'cpuA', label: 'A CPU', format: 'int', suffix: ' %' },
    { key: 'usA', label: 'A µs/in pkt', format: { significant: 3 } },
    { key: 'cpuB', label: 'B CPU', format: 'int', suffix: ' %' },
    { key: 'usB', label: 'B µs/in pkt', format: { significant: 3 } },
    { key: 'relayIn', label: 'B relay in pkts', format: 'int' },
    { key: 'client', label: 'client CPU pub / subs' },
  ];
  const sendingS = (STEPS * STEP_MS) / 1000;
  const rows: Record<string, BenchCell>[] = cases.map((c) => ({
    case: c.label,
    in: c.sent / sendingS,
    fwd: c.received / sendingS,
    loss: c.loss * 100,
    p50: c.p50,
    p99: c.p99,
    cpuA: (c.cpuA / c.wallS) * 100,
    usA: (c.cpuA * 1e6) / c.sent,
    cpuB: (c.cpuB / c.wallS) * 100,
    usB: (c.cpuB * 1e6) / c.sent,
    relayIn: c.relayIn,
    client: c.clientCpu.map((x) => `${Math.round(x * 100)} %`).join(' / '),
  }));
  const targets: BenchTarget[] = [];
  const notes: string[] = [];
  const local = cases.filter((c) => !c.label.startsWith('relay'));
  const relay = cases.find((c) => c.label.startsWith('relay'));
  if (relay && local.length > 0) {
    const lp50 = Math.min(...local.map((c) => c.p50));
    const lp99 = Math.min(...local.map((c) => c.p99));
    const hp50 = Math.max(...local.map((c) => c.p50));
    const hp99 = Math.max(...local.map((c) => c.p99));
    // Per relayed packet, above each node's idle CPU.
    const netA = (relay.cpuA - relay.idleA * relay.wallS) / relay.sent;
    const netB = (relay.cpuB - relay.idleB * relay.wallS) / relay.sent;
    const localA = local.map((c) => (c.cpuA - c.idleA * c.wallS) / c.sent);
    notes.push(
      `Extra one-way latency of the hop: p50 ${(relay.p50 - hp50).toFixed(2)} to ${(relay.p50 - lp50).toFixed(2)} ms, p99 ${(relay.p99 - hp99).toFixed(2)} to ${(relay.p99 - lp99).toFixed(2)} ms (relay row minus the two one-node rows, the range spans the two). Issue 8 sets no target for the hop; the node's own target (added latency p50 < 1 ms, p99 < 5 ms) is the fan-out benchmark's.`,
      `CPU per relayed packet above idle (each node's CPU over the ${IDLE_MS / 1000} s before the timed steps, subscribers connected, nothing sent: relay case A ${(relay.idleA * 100).toFixed(1)} %, B ${(relay.idleB * 100).toFixed(1)} % of a core): A (publisher's node, sends each packet once over the relay link) ${(netA * 1e6).toFixed(1)} µs, B (receives it from the link and sends it to ${SUBSCRIBERS} subscribers) ${(netB * 1e6).toFixed(1)} µs, together ${((netA + netB) * 1e6).toFixed(1)} µs, against ${localA.map((x) => (x * 1e6).toFixed(1)).join(' and ')} µs on A alone when A serves the ${SUBSCRIBERS} subscribers itself (one-node rows). The table's µs/in pkt columns are the raw CPU over the steps, idle included.${netA > 0.6 * Math.max(...localA) ? ` A's cost in the relay row is that of taking the packet in from the publisher (ICE, SRTP decryption, werift's receiver) plus one copy out over the link: that it is close to A's one-node cost, where A sends ${SUBSCRIBERS} copies, says most of a node's per-packet cost at this rate is on the way in and in fixed per-packet work, not per copy out.` : ''}`,
    );
  }
  const saturated = cases.some((c) => c.clientCpu.some((x) => x > SATURATED));
  notes.push(
    `Latency: send time written into each payload by the publisher process vs arrival at a subscriber bot's onReceiveRtp (performance.timeOrigin + now() on both; the fan-out benchmark's probe), over all ${SUBSCRIBERS} subscribers and ${STEPS} steps of ${STEP_MS / 1000} s, 10 µs histogram buckets; it includes the clients' werift work. CPU: utime + stime of each node process (/proc/<pid>/stat, 10 ms ticks) over the steps (sending + ${DRAIN_MS} ms drain each), per input packet. ${saturated ? 'A client process was above 90 % of a core in some case (see the table).' : 'No client process reached 90 % of a core.'}`,
    `Setup: one redis-server and two node processes (--dev, SFU_LOG_LEVEL=info) on 127.0.0.1, A in region ams and B in hcm, in one cluster (REDIS_URL); a subscriber on B of a publisher on A makes A open a relay link to B. The publisher (a bot whose own source is silenced; the benchmark's ${PAYLOAD_SIZE}-byte VP8-looking payloads go through its werift sender at ${RATE} packets/s, paced on a 1 ms timer) runs in one forked process, the ${SUBSCRIBERS} subscriber bots in another; both are new for each case. Each case: warm-up until every subscriber receives, 1 s at the rate, ${IDLE_MS / 1000} s idle, then ${STEPS} timed steps. The one-node case runs before and after the relay case, so drift on the shared 2-core VM shows as the difference between those two rows. B's relay-in counter (sfu_packets_total{direction="in",path="relay",kind="video"}) confirms the packets crossed the link.`,
  );
  return finishedResult(NAME, 'Relay hop: one stream through two nodes', started, {
    columns,
    rows,
    targets,
    notes,
  });
}

await main();
