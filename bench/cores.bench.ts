/**
 * One node per core (issue 16): two rooms, each 1 publisher -> N subscribers (werift bots),
 * either both on one node process or one on each of two node processes of this host (their
 * own HTTP ports and RTC port ranges, as `README.md`, "One node per core", runs them). The
 * same ~1200-byte video-like packets and ladder idea as the fan-out bench (bench/fanout.bench.ts,
 * whose client processes it reuses): the rate steps up until the subscribers lose > 0.1 %.
 *
 *   npm run bench -- cores
 *   node --conditions=source --import tsx bench/cores.bench.ts   (prints, writes nothing)
 *   CORES_QUICK=1 ...   a smoke run of the machinery (two steps)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { Child, cpuSeconds, histPercentileMs, mergeHist } from './fanout-common.js';
import { type BenchColumn, type BenchTarget, emitResult, finishedResult, Progress } from './lib.js';

const NAME = 'cores';
const QUICK = Boolean(process.env.CORES_QUICK);
/** Subscribers per room, in SUB_PROCESSES client processes. */
const N = 10;
const SUB_PROCESSES = 2;
const ROOMS = ['cores-a', 'cores-b'];
/** Forwarded packets/s of both rooms together the steps aim at, ×1.25 apart. */
const LADDER = [
  4_000, 5_000, 6_400, 8_000, 10_000, 12_500, 16_000, 20_000, 25_000, 32_000, 40_000,
].slice(0, QUICK ? 2 : undefined);
const STEP_MS = 2_500;
const DRAIN_MS = 400;
const LOSS_LIMIT = 0.001;
const SATURATED = 0.9;
/** "About twice": what two processes must forward, as a multiple of one. */
const TARGET_RATIO = 1.8;

type Setup = 'one' | 'two';
const LABEL: Record<Setup, string> = {
  one: 'one node process, both rooms',
  two: 'two node processes, a room each',
};

interface Step {
  fwdTarget: number;
  loss: number;
  /** CPU of each node process over wall time (1 = one core). */
  nodeCpu: number[];
  /** Node CPU time per forwarded packet, µs (all node processes together). */
  usPerFwd: number;
  maxClientCpu: number;
  p50: number;
  p99: number;
}

interface Room {
  node: NodeProcess;
  pub: Child;
  subs: Child[];
}

const started = Date.now();
const progress = new Progress(`[${NAME}]`);

async function openRoom(node: NodeProcess, room: string, live: Set<Child>): Promise<Room> {
  const pub = new Child('./fanout-client.ts');
  live.add(pub);
  await pub.call('publisher', { mode: 'sfu', url: node.url, room });
  const subs: Child[] = [];
  for (let i = 0; i < SUB_PROCESSES; i++) {
    const sub = new Child('./fanout-client.ts');
    live.add(sub);
    subs.push(sub);
    const count = Math.floor(N / SUB_PROCESSES) + (i < N % SUB_PROCESSES ? 1 : 0);
    await sub.call('subscribers', { mode: 'sfu', count, offset: i * N, url: node.url, room });
  }
  return { node, pub, subs };
}

async function runStep(rooms: Room[], nodes: NodeProcess[], no: number, fwdTarget: number) {
  const input = Math.max(1, Math.round(fwdTarget / (rooms.length * N)));
  const subs = rooms.flatMap((r) => r.subs);
  const clients = [...rooms.map((r) => r.pub), ...subs];
  await Promise.all(subs.map((s) => s.call('begin', { step: no })));
  const node0 = nodes.map((n) => cpuSeconds(n.pid));
  const client0 = clients.map((c) => cpuSeconds(c.pid));
  const t0 = performance.now();
  const runs = await Promise.all(
    rooms.map((r) =>
      r.pub.call<{ sent: number }>('run', { step: no, rate: input, durationMs: STEP_MS }),
    ),
  );
  await sleep(DRAIN_MS);
  const wallS = (performance.now() - t0) / 1000;
  const nodeS = nodes.map((n, i) => cpuSeconds(n.pid) - (node0[i] as number));
  const clientCpu = clients.map((c, i) => (cpuSeconds(c.pid) - (client0[i] as number)) / wallS);
  const ends = await Promise.all(subs.map((s) => s.call<{ count: number; hist: number[] }>('end')));
  const sent = runs.reduce((a, r) => a + r.sent, 0);
  const received = ends.reduce((a, e) => a + e.count, 0);
  const hist = ends.reduce<number[]>((h, e) => mergeHist(h, e.hist), []);
  return {
    fwdTarget,
    loss: Math.max(0, 1 - received / (sent * N)),
    nodeCpu: nodeS.map((s) => s / wallS),
    usPerFwd: (nodeS.reduce((a, s) => a + s, 0) * 1e6) / (sent * N),
    maxClientCpu: Math.max(...clientCpu),
    p50: histPercentileMs(hist, 50),
    p99: histPercentileMs(hist, 99),
  } satisfies Step;
}

async function sweep(setup: Setup, live: Set<Child>): Promise<Step[]> {
  progress.step(`${setup}: starting ${setup === 'one' ? 'a node' : 'two nodes'}`);
  const nodes: NodeProcess[] = [];
  const steps: Step[] = [];
  try {
    for (let i = 0; i < (setup === 'one' ? 1 : 2); i++) {
      const range = `${41_000 + i * 200}-${41_000 + i * 200 + 199}`;
      nodes.push(
        await startNode({
          region: 'ams',
          nodeId: `cores-${i}`,
          env: { SFU_RTC_PORT_RANGE: range },
        }),
      );
    }
    const rooms: Room[] = [];
    for (const [i, room] of ROOMS.entries()) {
      progress.step(`${setup}: room ${room}, a publisher and ${N} subscribers`);
      rooms.push(await openRoom(nodes[i % nodes.length] as NodeProcess, room, live));
    }
    // Warm-up: every subscriber receives (and each node saw a keyframe) before timing.
    let warm = await runStep(rooms, nodes, 0, 200 * N);
    for (let t = 0; t < 7 && warm.loss > LOSS_LIMIT; t++) {
      warm = await runStep(rooms, nodes, 0, 200 * N);
    }
    if (warm.loss > LOSS_LIMIT) {
      throw new Error(`${setup}: warm-up lost ${(warm.loss * 100).toFixed(1)} %`);
    }
    for (const [k, fwdTarget] of LADDER.entries()) {
      progress.step(`${setup}: ${fwdTarget} forwarded pkt/s`);
      const step = await runStep(rooms, nodes, k + 1, fwdTarget);
      steps.push(step);
      if (step.loss > LOSS_LIMIT) break;
    }
  } finally {
    const clients = [...live];
    await Promise.allSettled(clients.map((c) => c.call('close')));
    await Promise.allSettled(clients.map((c) => c.stop()));
    live.clear();
    await Promise.allSettled(nodes.map((n) => n.stop()));
  }
  return steps;
}

const lossFree = (steps: Step[]) => steps.filter((s) => s.loss <= LOSS_LIMIT);

function stoppedBy(steps: Step[]): string {
  const last = steps.at(-1);
  if (!last) return 'no step';
  if (last.loss <= LOSS_LIMIT) return "no loss up to the ladder's top";
  const node = Math.max(...last.nodeCpu);
  const who =
    node > SATURATED
      ? 'a node process saturated'
      : last.maxClientCpu > SATURATED
        ? 'a CLIENT saturated first'
        : 'no process at 90 %: the two cores are shared by every process';
  return `${(last.loss * 100).toFixed(2)} % loss at ${last.fwdTarget.toLocaleString('en-US')}/s; nodes ${last.nodeCpu.map((c) => `${Math.round(c * 100)} %`).join(' + ')}, max client ${Math.round(last.maxClientCpu * 100)} %: ${who}`;
}

async function main(): Promise<void> {
  const live = new Set<Child>();
  const kill = () => {
    for (const c of live) c.proc.kill('SIGKILL');
  };
  process.on('exit', kill);
  const results = new Map<Setup, Step[]>();
  try {
    for (const setup of ['one', 'two'] as const) results.set(setup, await sweep(setup, live));
  } finally {
    progress.done();
    kill();
  }
  const columns: BenchColumn[] = [
    { key: 'setup', label: 'nodes' },
    { key: 'fwd', label: 'max loss-free fwd pkt/s', format: 'int' },
    { key: 'cpu', label: 'node CPU', suffix: ' %' },
    { key: 'us', label: 'µs node CPU/fwd pkt', format: { significant: 3 } },
    { key: 'client', label: 'max client CPU', format: 'int', suffix: ' %' },
    { key: 'p50', label: 'lat p50 ms', format: { decimals: 2 } },
    { key: 'p99', label: 'lat p99 ms', format: { decimals: 2 } },
    { key: 'stop', label: 'next step' },
  ];
  const best = (setup: Setup) => lossFree(results.get(setup) ?? []).at(-1);
  const rows = (['one', 'two'] as const).map((setup) => {
    const b = best(setup);
    return {
      setup: LABEL[setup],
      fwd: b?.fwdTarget ?? 0,
      cpu: b ? b.nodeCpu.map((c) => Math.round(c * 100)).join(' + ') : null,
      us: b?.usPerFwd ?? null,
      client: b ? b.maxClientCpu * 100 : null,
      p50: b?.p50 ?? null,
      p99: b?.p99 ?? null,
      stop: stoppedBy(results.get(setup) ?? []),
    };
  });
  const one = best('one')?.fwdTarget ?? 0;
  const two = best('two')?.fwdTarget ?? 0;
  const targets: BenchTarget[] =
    one > 0
      ? [
          {
            what: 'two node processes / one, max loss-free forwarded pkt/s, rooms spread',
            target: `≈ 2× (≥ ${TARGET_RATIO}×)`,
            value: `${(two / one).toFixed(2)}× (${two.toLocaleString('en-US')} vs ${one.toLocaleString('en-US')}/s)`,
            pass: two / one >= TARGET_RATIO,
          },
        ]
      : [];
  const notes = [
    `Two rooms, each a publisher bot and ${N} subscriber bots (in ${SUB_PROCESSES} processes per room), the fan-out bench's client processes (bench/fanout-client.ts): ~1200-byte VP8-looking packets, the latency probe in each payload. The ladder (${LADDER.map((x) => `${x / 1000}k`).join(', ')} forwarded pkt/s for both rooms together, each publisher sending its share) stops at the first step where the subscribers together lost more than ${LOSS_LIMIT * 100} %; a row is the highest loss-free step, so the true limit lies below the next one (×1.25).`,
    'one: both rooms on one node process; two: a node process per room, each with its own HTTP port and SFU_RTC_PORT_RANGE, as the room-affinity routing places them (test/integration/room-affinity.test.ts shows the routing; here the bots join their node directly). node CPU: utime + stime of each node process over wall time (100 % = one core); µs node CPU/fwd pkt: all node processes together per forwarded packet.',
    `The machine has 2 cores, and the ${ROOMS.length * (1 + SUB_PROCESSES)} client processes run on them too: a werift subscriber spends about what the node spends per packet it forwards (decryption, werift's receive path), so on this host the clients take the CPU a second node process would need. "about twice" is what two processes on two free cores give; here the ratio says how much of that the clients leave.`,
  ];
  emitResult(
    finishedResult(NAME, 'One node per core: two node processes against one', started, {
      columns,
      rows,
      targets,
      notes,
    }),
  );
}

await main();
