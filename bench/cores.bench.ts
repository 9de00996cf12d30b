/**
 * One node per core (issue 16): two rooms, each 1 publisher -> N subscribers (werift bots),
 * either both on one node process or one on each of two node processes of this host (their
 * own HTTP ports and RTC port ranges, as `README.md`, "One node per core", runs them). The
 * same ~1200-byte video-like packets and ladder idea as the fan-out bench (bench/fanout.bench.ts,
 * whose client processes it reuses): the rate steps up until the subscribers lose > 0.1 %.
 * The subscribers receive in werift during the warm-up (proof that what the node sends
 * decrypts); then the kernel counts and drops their RTP (bench/kernel-sink.ts), and the
 * publishers hand packets straight to werift's SRTP transport, so that the node processes,
 * not the bots, are what saturates.
 *
 *   npm run bench -- cores
 *   node --conditions=source --import tsx bench/cores.bench.ts   (prints, writes nothing)
 *   CORES_QUICK=1 ...   a smoke run of the machinery (two steps)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuShares, readCpuTimes } from '../infra/lab/src/experiment/cpu.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { Child, cpuSeconds, udpDrops, udpDropsByPort } from './fanout-common.js';
import { KernelSink } from './kernel-sink.js';
import { type BenchColumn, type BenchTarget, emitResult, finishedResult, Progress } from './lib.js';

const NAME = 'cores';
const QUICK = Boolean(process.env.CORES_QUICK);
/** Subscribers per room (bots in one process per room, counted by the kernel when timed). */
const N = 10;
const ROOMS = ['cores-a', 'cores-b'];
/** Forwarded packets/s of both rooms together the steps aim at, ×1.25 apart. */
const LADDER = [
  8_000, 12_000, 16_000, 18_000, 20_000, 22_000, 24_000, 26_000, 28_000, 30_000, 32_000, 34_000,
  36_000, 38_000, 40_000, 42_000, 44_000, 46_000, 48_000, 50_000, 55_000, 60_000,
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
  /** Datagrams the kernel dropped at full receive buffers during the step (whole host). */
  rcvbufDrops: number;
  /** Of those, the ones dropped at the node processes' sockets (their RTC port ranges). */
  nodeSocketDrops: number;
  /** Share of the host's CPU time busy (all cores, /proc/stat). */
  hostBusy: number;
}

interface Room {
  node: NodeProcess;
  pub: Child;
  /** The N subscriber bots, and their UDP ports. */
  subs: Child;
  ports: number[];
}

const started = Date.now();
const progress = new Progress(`[${NAME}]`);

/** The RTC port ranges the node processes get (SFU_RTC_PORT_RANGE). */
const RTC_PORTS = { first: 41_000, perNode: 200 };

/** Datagrams dropped at full buffers by the sockets in the node processes' port ranges. */
function nodeSocketDrops(): number {
  let sum = 0;
  const last = RTC_PORTS.first + 2 * RTC_PORTS.perNode;
  for (const [port, drops] of udpDropsByPort()) {
    if (port >= RTC_PORTS.first && port < last) sum += drops;
  }
  return sum;
}

async function openRoom(node: NodeProcess, room: string, live: Set<Child>): Promise<Room> {
  const pub = new Child('./fanout-client.ts');
  live.add(pub);
  await pub.call('publisher', { mode: 'sfu', url: node.url, room, viaTransport: true });
  const subs = new Child('./fanout-client.ts');
  live.add(subs);
  const { ports } = await subs.call<{ ports: number[] }>('subscribers', {
    mode: 'sfu',
    count: N,
    offset: 0,
    url: node.url,
    room,
  });
  return { node, pub, subs, ports };
}

async function runStep(
  rooms: Room[],
  nodes: NodeProcess[],
  no: number,
  fwdTarget: number,
  sink: KernelSink | undefined,
) {
  const input = Math.max(1, Math.round(fwdTarget / (rooms.length * N)));
  const subs = rooms.map((r) => r.subs);
  const clients = [...rooms.map((r) => r.pub), ...subs];
  await Promise.all(subs.map((s) => s.call('begin', { step: no })));
  const node0 = nodes.map((n) => cpuSeconds(n.pid));
  const client0 = clients.map((c) => cpuSeconds(c.pid));
  const drops0 = udpDrops().rcvbuf;
  const nodeDrops0 = nodeSocketDrops();
  const host0 = readCpuTimes();
  const sunk0 = sink?.packets() ?? 0;
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
  const rcvbufDrops = udpDrops().rcvbuf - drops0;
  const nodeDrops = nodeSocketDrops() - nodeDrops0;
  const host1 = readCpuTimes();
  const sunk = (sink?.packets() ?? 0) - sunk0;
  const ends = await Promise.all(subs.map((s) => s.call<{ count: number }>('end')));
  const sent = runs.reduce((a, r) => a + r.sent, 0);
  const received = ends.reduce((a, e) => a + e.count, 0) + sunk;
  return {
    fwdTarget,
    loss: Math.max(0, 1 - received / (sent * N)),
    nodeCpu: nodeS.map((s) => s / wallS),
    usPerFwd: (nodeS.reduce((a, s) => a + s, 0) * 1e6) / (sent * N),
    maxClientCpu: Math.max(...clientCpu),
    rcvbufDrops,
    nodeSocketDrops: nodeDrops,
    hostBusy: host0 && host1 ? cpuShares(host0, host1).busyPercent / 100 : 0,
  } satisfies Step;
}

async function sweep(setup: Setup, live: Set<Child>): Promise<Step[]> {
  progress.step(`${setup}: starting ${setup === 'one' ? 'a node' : 'two nodes'}`);
  const nodes: NodeProcess[] = [];
  const steps: Step[] = [];
  let sink: KernelSink | undefined;
  try {
    for (let i = 0; i < (setup === 'one' ? 1 : 2); i++) {
      const first = RTC_PORTS.first + i * RTC_PORTS.perNode;
      const range = `${first}-${first + RTC_PORTS.perNode - 1}`;
      nodes.push(
        await startNode({
          region: 'ams',
          nodeId: `cores-${i}`,
          env: {
            SFU_RTC_PORT_RANGE: range,
            ...(process.env.XBUF ? { NODE_OPTIONS: '--import /tmp/bigbuf.mjs' } : {}),
          },
        }),
      );
    }
    const rooms: Room[] = [];
    for (const [i, room] of ROOMS.entries()) {
      progress.step(`${setup}: room ${room}, a publisher and ${N} subscribers`);
      rooms.push(await openRoom(nodes[i % nodes.length] as NodeProcess, room, live));
    }
    // Warm-up: every subscriber receives (and each node saw a keyframe) before timing.
    // werift's receivers send their reports from their first packet on, and keep the
    // node's liveness check content once the kernel takes the sinks' packets.
    let warm = await runStep(rooms, nodes, 0, 200 * N, undefined);
    for (let t = 0; t < 7 && warm.loss > LOSS_LIMIT; t++) {
      warm = await runStep(rooms, nodes, 0, 200 * N, undefined);
    }
    if (warm.loss > LOSS_LIMIT) {
      throw new Error(`${setup}: warm-up lost ${(warm.loss * 100).toFixed(1)} %`);
    }
    sink = KernelSink.open(
      `cores_${setup}`,
      rooms.flatMap((r) => r.ports),
    );
    // From here the bots' own counters stay still: the kernel counts their packets.
    const check = await runStep(rooms, nodes, 0, 200 * N, sink);
    if (check.loss > LOSS_LIMIT) {
      throw new Error(`${setup}: with the kernel sink, ${(check.loss * 100).toFixed(1)} % lost`);
    }
    for (const [k, fwdTarget] of LADDER.entries()) {
      progress.step(`${setup}: ${fwdTarget} forwarded pkt/s`);
      let step = await runStep(rooms, nodes, k + 1, fwdTarget, sink);
      // This VM stalls for a few hundred ms now and then: a step that lost runs once more.
      if (step.loss > LOSS_LIMIT) step = await runStep(rooms, nodes, k + 1, fwdTarget, sink);
      progress.step(
        `${setup}: ${fwdTarget} forwarded pkt/s: loss ${(step.loss * 100).toFixed(2)} %, nodes ${step.nodeCpu.map((c) => Math.round(c * 100)).join(' + ')} %, max client ${Math.round(step.maxClientCpu * 100)} %, host ${Math.round(step.hostBusy * 100)} % busy, ${step.rcvbufDrops} rcvbuf drops (${step.nodeSocketDrops} at the nodes')`,
      );
      steps.push(step);
      if (step.loss > LOSS_LIMIT) break;
    }
  } finally {
    sink?.close();
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
  return `${(last.loss * 100).toFixed(2)} % loss at ${last.fwdTarget.toLocaleString('en-US')}/s; nodes ${last.nodeCpu.map((c) => `${Math.round(c * 100)} %`).join(' + ')}, max client ${Math.round(last.maxClientCpu * 100)} %, ${last.rcvbufDrops.toLocaleString('en-US')} datagrams dropped at full socket buffers (${last.nodeSocketDrops.toLocaleString('en-US')} at the nodes'): ${who}`;
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
    { key: 'host', label: 'host CPU busy', format: 'int', suffix: ' %' },
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
      host: b ? b.hostBusy * 100 : null,
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
    `Two rooms, each a publisher bot and ${N} subscriber bots (a process each), the fan-out bench's client processes (bench/fanout-client.ts): ~1200-byte VP8-looking packets. The ladder (${LADDER.map((x) => `${x / 1000}k`).join(', ')} forwarded pkt/s for both rooms together, each publisher sending its share, ${STEP_MS / 1000} s a step) stops at the first step where the subscribers together lost more than ${LOSS_LIMIT * 100} % twice in a row (this VM stalls now and then); a row is the highest loss-free step, so the true limit lies below the next one.`,
    `The clients must not take the CPU the nodes need: during the warm-up every subscriber receives and decrypts in werift (what the node sends is valid SRTP); then an nftables counter on their UDP ports counts and drops their RTP in the kernel (bench/kernel-sink.ts; STUN, DTLS and RTCP still reach the bots, so ICE and the node's liveness check go on), and the publishers hand packets straight to werift's SRTP transport instead of its RTCRtpSender. Loss = 1 − counted / (sent × ${N}). With werift receivers the bots took about what the nodes spent and their socket buffers overflowed first ("two" measured 0.63× and 0.78× "one").`,
    'one: both rooms on one node process; two: a node process per room, each with its own HTTP port and SFU_RTC_PORT_RANGE, as the room-affinity routing places them (test/integration/room-affinity.test.ts shows the routing; here the bots join their node directly). node CPU: utime + stime of each node process over wall time (100 % = one core; above 100 %: werift and GC threads); µs node CPU/fwd pkt: all node processes together per forwarded packet; host CPU busy: all cores, /proc/stat.',
    `"next step" names the datagrams the kernel dropped at full socket buffers (/proc/net/snmp RcvbufErrors) and how many of those at the node processes' sockets (/proc/net/udp). With Linux's default receive buffer (208 KiB) a node at 55 % of a core dropped 1.5 % of its publishers' packets at 24,000 forwarded/s (its event loop busy in bursts); SFU_UDP_RECEIVE_BUFFER (default 1 MiB, capped by net.core.rmem_max, 4 MiB on this VM) ended that: drops came back only once a node or the host ran out of CPU.`,
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
