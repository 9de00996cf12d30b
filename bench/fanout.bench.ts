/**
 * Fan-out: 1 publisher -> N subscribers (N = 1, 10, 50) through one forwarder process, with
 * ~1200-byte video-like packets, stepping the input rate until subscriber loss > 0.1 %. Four
 * forwarders on the same ladder of rates, each in its own process, clients in other processes:
 *
 *   ours      the SFU node (packages/node/src/cli.ts), werift bots joining through it
 *   naive     a minimal werift SFU, `sender.replaceTrack(remoteTrack)` per subscriber
 *   janus     a peer: Debian's Janus, its streaming plugin (plain RTP in, WebRTC viewers out),
 *             werift viewers on its HTTP API (bench/janus-server.ts); skipped, and said so,
 *             when /usr/bin/janus is not installed
 *   ceiling   dgram + AES-128-GCM per packet from node:crypto (bench/fanout-forwarder.ts)
 *
 * Then, in-process in its own child (bench/fanout-select.ts), what simulcast layer selection
 * and rewriting add per forwarded packet on the node's packet path, werift's sender isolated,
 * compared with the single-layer path and with ours' µs CPU/fwd pkt above.
 *
 *   npm run bench -- fanout
 *   node --conditions=source --import tsx bench/fanout.bench.ts   (prints, writes nothing)
 *   FANOUT_QUICK=1 ...            a smoke run of the machinery
 *   FANOUT_SELECTION_ONLY=1 ...   the selection part alone
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { metricValue } from '../test/helpers/metrics.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import {
  BENCH_UDP_BUFFER,
  Child,
  cpuSeconds,
  histPercentileMs,
  mergeHist,
  PAYLOAD_SIZE,
  SELECT_MODES,
  type SelectMode,
  type SelectResult,
  SWITCH_EVERY_FRAMES,
} from './fanout-common.js';
import { type PeerPair, peerNotes, peerTable } from './fanout-peer.js';
import { JanusServer, janusUnavailable } from './janus-server.js';
import {
  type BenchColumn,
  type BenchResult,
  type BenchSubTable,
  type BenchTarget,
  emitResult,
  finishedResult,
  Progress,
} from './lib.js';

const NAME = 'fanout';
/** FANOUT_QUICK=1: N = 1 and 10, two steps each (a smoke test of the machinery). */
const QUICK = Boolean(process.env.FANOUT_QUICK);
/** FANOUT_SELECTION_ONLY=1: only the in-process selection part (no ladder; use --no-docs). */
const SELECTION_ONLY = Boolean(process.env.FANOUT_SELECTION_ONLY);
const FANOUTS = QUICK ? [1, 10] : [1, 10, 50];
/** Forwarded packets/s the steps aim at (input = this / N), ×1.6 apart. */
const LADDER = [2_000, 3_200, 5_000, 8_000, 12_500, 20_000, 32_000, 50_000, 80_000].slice(
  0,
  QUICK ? 2 : undefined,
);
/** The publisher process cannot send more than this; higher steps are skipped. */
const MAX_INPUT = 25_000;
const STEP_MS = 2_500;
/** After the publisher stops: packets still in flight are counted. */
const DRAIN_MS = 400;
const LOSS_LIMIT = 0.001;
const SATURATED = 0.9;
/** After this long the remaining sweeps take every other step (four systems: ~50 s each). */
const COARSE_AFTER_MS = 200_000;
const TARGET_COST_RATIO = 0.5;
/** The selection part: timed rounds of each mode (median reported), warm-up first. */
const SELECT_ROUNDS = QUICK ? 3 : 7;
const SELECT_ROUND_MS = QUICK ? 100 : 300;
const SELECT_WARMUP_MS = QUICK ? 100 : 500;
const TARGET_THROUGHPUT_RATIO = 0.7;

type System = 'ours' | 'naive' | 'ceiling' | 'janus';
/** In the order they run: the peer before the ceiling, whose sweep may then be the coarse one. */
const SYSTEMS: System[] = ['ours', 'naive', 'janus', 'ceiling'];
/** In the order of the table. */
const ROW_ORDER: System[] = ['ours', 'naive', 'ceiling', 'janus'];
const LABEL: Record<System, string> = {
  ours: 'ours: SFU node',
  naive: '(a) naive werift replaceTrack',
  ceiling: '(b) dgram + AES-GCM ceiling',
  janus: '(c) Janus streaming plugin',
};
/** The client processes' mode (bench/fanout-client.ts) for each system. */
const CLIENT_MODE: Record<System, 'sfu' | 'naive' | 'udp' | 'janus'> = {
  ours: 'sfu',
  naive: 'naive',
  ceiling: 'udp',
  janus: 'janus',
};

interface Step {
  fwdTarget: number;
  input: number;
  sent: number;
  received: number;
  loss: number;
  wallS: number;
  fwdCpu: number;
  usPerFwd: number;
  clientCpu: number[];
  p50: number;
  p99: number;
  /** undefined for Janus: a C process with threads, no event loop to measure. */
  elP99Ms: number | undefined;
}

interface Sweep {
  system: System;
  n: number;
  workers: number;
  steps: Step[];
  coarse: boolean;
}

interface Forwarder {
  pid: number;
  /** Where the clients connect: the node's or naive's URL, ceiling's or Janus's RTP port. */
  info: { url?: string; host?: string; port?: number; mountpoint?: number; hostAddress?: string };
  /** Event-loop delay p99 since the last call, ms (the first call resets); Janus: undefined. */
  elP99(): Promise<number | undefined>;
  /** Ends the forwarder (each N gets a fresh one). */
  stop(): Promise<void>;
  child?: Child;
}

const started = Date.now();
/** Janus's version, from its server info when it started. */
let janusVersion: string | undefined;
const progress = new Progress(`[${NAME}]`);

async function startForwarder(system: System): Promise<Forwarder> {
  if (system === 'ours') {
    const node: NodeProcess = await startNode({ region: 'ams', nodeId: 'fanout' });
    return {
      pid: node.pid,
      info: { url: node.url },
      // prom-client resets its event-loop histogram on every scrape.
      elP99: async () =>
        (await metricValue(node.metricsUrl, 'nodejs_eventloop_lag_p99_seconds')) * 1000,
      stop: async () => {
        await node.stop();
      },
    };
  }
  if (system === 'janus') {
    const janus = await JanusServer.start();
    janusVersion = janus.version;
    return {
      pid: janus.pid,
      info: {
        url: janus.url,
        host: janus.rtpHost,
        port: janus.rtpPort,
        mountpoint: janus.mountpointId,
        hostAddress: janus.clientAddress,
      },
      elP99: async () => undefined,
      stop: () => janus.stop(),
    };
  }
  const child = new Child('./fanout-forwarder.ts', [system === 'naive' ? 'naive' : 'ceiling']);
  const info = await child.call<{ url?: string; port?: number }>('info');
  return {
    pid: child.pid,
    info,
    child,
    elP99: () => child.call<number>('elp99'),
    stop: () => child.stop(),
  };
}

/**
 * Every N on a fresh forwarder and publisher: a forwarder that was driven into overload at
 * the previous N (werift's naive one once forwarded nothing afterwards) does not carry that
 * into the next.
 */
async function sweepSystem(system: System, sweeps: Sweep[], live: Set<Child>): Promise<void> {
  for (const n of FANOUTS) {
    progress.step(`${system} N=${n}: starting the forwarder and the publisher`);
    const fwd = await startForwarder(system);
    const pub = new Child('./fanout-client.ts');
    live.add(pub);
    try {
      const info = fwd.info;
      const mode = CLIENT_MODE[system];
      await pub.call('publisher', { mode, ...info });
      const workerCount = n === 1 ? 1 : n <= 10 ? 2 : 3;
      progress.step(`${system} N=${n}: ${n} subscribers in ${workerCount} processes`);
      const subs = Array.from({ length: workerCount }, () => new Child('./fanout-client.ts'));
      for (const s of subs) live.add(s);
      try {
        const counts = subs.map(
          (_, i) => Math.floor(n / workerCount) + (i < n % workerCount ? 1 : 0),
        );
        let offset = 0;
        const ports: number[] = [];
        for (const [i, s] of subs.entries()) {
          const r = await s.call<{ ports: number[] }>('subscribers', {
            mode,
            count: counts[i],
            offset,
            url: info.url,
            mountpoint: info.mountpoint,
            hostAddress: info.hostAddress,
          });
          ports.push(...r.ports);
          offset += counts[i] as number;
        }
        if (system === 'ceiling') await (fwd.child as Child).call('setReceivers', { ports });
        // Warm-up: every subscriber must receive (and the node see a keyframe) before timing.
        // (DTLS may still be coming up, a keyframe may be awaited): up to 8 tries of 1 s.
        let warm = await runStep(fwd, pub, subs, n, 0, 100 * n, 1_000);
        for (let t = 0; t < 7 && warm.loss > 0.001; t++) {
          warm = await runStep(fwd, pub, subs, n, 0, 100 * n, 1_000);
        }
        if (warm.loss > 0.001) {
          throw new Error(`${system} N=${n}: warm-up lost ${(warm.loss * 100).toFixed(1)} %`);
        }
        const sweep: Sweep = { system, n, workers: workerCount, steps: [], coarse: false };
        sweeps.push(sweep);
        for (let k = 0; k < LADDER.length; k++) {
          const fwdTarget = LADDER[k] as number;
          if (fwdTarget / n > MAX_INPUT) break;
          if (Date.now() - started > COARSE_AFTER_MS && k % 2 === 1 && sweep.steps.length > 0) {
            sweep.coarse = true;
            continue;
          }
          progress.step(
            `${system} N=${n}: ${fwdTarget} forwarded pkt/s (${Math.round(fwdTarget / n)} in)`,
          );
          let step = await runStep(fwd, pub, subs, n, k + 1, fwdTarget, STEP_MS);
          // This VM stalls for a few hundred ms now and then: a step that lost runs once more.
          if (step.loss > LOSS_LIMIT) {
            step = await runStep(fwd, pub, subs, n, k + 1, fwdTarget, STEP_MS);
          }
          sweep.steps.push(step);
          if (step.loss > LOSS_LIMIT) break;
        }
      } finally {
        await Promise.allSettled(subs.map((s) => s.call('close')));
        await Promise.allSettled(subs.map((s) => s.stop()));
        for (const s of subs) live.delete(s);
      }
    } finally {
      await pub.call('close').catch(() => {});
      await pub.stop();
      live.delete(pub);
      await fwd.stop();
    }
  }
}

async function runStep(
  fwd: Forwarder,
  pub: Child,
  subs: Child[],
  n: number,
  stepNo: number,
  fwdTarget: number,
  durationMs: number,
): Promise<Step> {
  const input = Math.max(1, Math.round(fwdTarget / n));
  await Promise.all(subs.map((s) => s.call('begin', { step: stepNo })));
  await fwd.elP99();
  const clients = [pub, ...subs];
  const cpu0 = cpuSeconds(fwd.pid);
  const client0 = clients.map((c) => cpuSeconds(c.pid));
  const t0 = performance.now();
  const { sent } = await pub.call<{ sent: number }>('run', {
    step: stepNo,
    rate: input,
    durationMs,
  });
  await sleep(DRAIN_MS);
  const wallS = (performance.now() - t0) / 1000;
  const fwdCpuS = cpuSeconds(fwd.pid) - cpu0;
  const clientCpu = clients.map((c, i) => (cpuSeconds(c.pid) - (client0[i] as number)) / wallS);
  const elP99Ms = await fwd.elP99();
  const ends = await Promise.all(subs.map((s) => s.call<{ count: number; hist: number[] }>('end')));
  const received = ends.reduce((a, e) => a + e.count, 0);
  const hist = ends.reduce<number[]>((h, e) => mergeHist(h, e.hist), []);
  return {
    fwdTarget,
    input,
    sent,
    received,
    loss: Math.max(0, 1 - received / (sent * n)),
    wallS,
    fwdCpu: fwdCpuS / wallS,
    usPerFwd: (fwdCpuS * 1e6) / (sent * n),
    clientCpu,
    p50: histPercentileMs(hist, 50),
    p99: histPercentileMs(hist, 99),
    elP99Ms,
  };
}

/** The in-process part: every mode at every N, in one child process of its own. */
async function measureSelection(live: Set<Child>): Promise<SelectResult[]> {
  const child = new Child('./fanout-select.ts');
  live.add(child);
  const out: SelectResult[] = [];
  try {
    for (const n of FANOUTS) {
      for (const mode of SELECT_MODES) {
        progress.step(`selection N=${n}: ${mode}`);
        out.push(
          await child.call<SelectResult>('run', {
            mode,
            n,
            rounds: SELECT_ROUNDS,
            roundMs: SELECT_ROUND_MS,
            warmupMs: SELECT_WARMUP_MS,
          }),
        );
      }
    }
  } finally {
    await child.stop();
    live.delete(child);
  }
  return out;
}

// ---------------------------------------------------------------------------------------

const lossFree = (s: Sweep) => s.steps.filter((x) => x.loss <= LOSS_LIMIT);
const best = (s: Sweep) => lossFree(s).at(-1);
/** The highest loss-free step at no more than half the best one's rate: "below saturation". */
const half = (s: Sweep) => {
  const b = best(s);
  if (!b) return undefined;
  return (
    lossFree(s)
      .filter((x) => x.fwdTarget <= b.fwdTarget / 2)
      .at(-1) ?? lossFree(s)[0]
  );
};
const pct = (x: number) => Math.round(x * 100);

function stoppedBy(s: Sweep): string {
  const last = s.steps.at(-1);
  if (!last) return 'no step';
  if (last.loss <= LOSS_LIMIT) return `no loss up to the ladder's top (input ≤ ${MAX_INPUT}/s)`;
  const client = Math.max(...last.clientCpu);
  const who =
    client > SATURATED && last.fwdCpu <= SATURATED
      ? 'a CLIENT saturated first'
      : last.fwdCpu > SATURATED
        ? 'forwarder saturated'
        : 'neither process at 90 % (socket buffers / scheduling)';
  return `${pct(last.loss * 100) / 100} % loss at ${last.fwdTarget.toLocaleString('en-US')}/s; fwd ${pct(last.fwdCpu)} %, max client ${pct(client)} %: ${who}`;
}

const SELECT_LABEL: Record<SelectMode, string> = {
  passthrough: 'single layer (today)',
  settled: 'simulcast, settled: selection',
  rewrite: 'simulcast, settled after a switch: selection + rewriting',
  switching: 'simulcast, switching: selection + rewriting + switches',
};

/** µs of our packet path per packet a sink sent. */
const usPerSent = (r: SelectResult) => r.usPerOp / r.sentPerInput;

function selectionTable(results: SelectResult[], oursN10: number | undefined): BenchSubTable {
  const columns: BenchColumn[] = [
    { key: 'mode', label: 'path (werift sender isolated)' },
    { key: 'n', label: 'N', format: 'int' },
    { key: 'sends', label: 'sent/in pkt', format: { decimals: 2 } },
    { key: 'call', label: 'µs/in pkt/sink', format: { significant: 3 } },
    { key: 'us', label: 'µs/fwd pkt', format: { significant: 3 } },
    { key: 'spread', label: 'spread', format: 'int', suffix: ' %' },
    { key: 'delta', label: 'Δ vs single layer µs/fwd pkt', format: { significant: 2 } },
    { key: 'share', label: 'Δ / ours µs CPU/fwd pkt N=10', format: { decimals: 1 }, suffix: ' %' },
    { key: 'switches', label: 'switches/1k fwd', format: { decimals: 1 } },
  ];
  const rows = results.map((r) => {
    const base = results.find((x) => x.n === r.n && x.mode === 'passthrough');
    const delta = base && r.mode !== 'passthrough' ? usPerSent(r) - usPerSent(base) : null;
    return {
      mode: SELECT_LABEL[r.mode],
      n: r.n,
      sends: r.sentPerInput,
      call: r.usPerOp / r.n,
      us: usPerSent(r),
      spread: r.spread * 100,
      delta,
      share: delta !== null && oursN10 ? (delta / oursN10) * 100 : null,
      switches: r.mode === 'switching' ? r.switchesPerK : null,
    };
  });
  return {
    title: 'Simulcast selection and rewriting, per forwarded packet (in-process)',
    columns,
    rows,
  };
}

function selectionNotes(results: SelectResult[], oursN10: number | undefined): string[] {
  const at10 = (mode: SelectMode) => results.find((r) => r.n === 10 && r.mode === mode);
  const base = at10('passthrough');
  const summary =
    base && oursN10
      ? `Selection and rewriting at N=10, beside ours' ${oursN10.toFixed(1)} µs CPU/fwd pkt end to end in this run: the single-layer path costs ${usPerSent(base).toFixed(2)} µs of it (${((usPerSent(base) / oursN10) * 100).toFixed(1)} %); ${(
          ['settled', 'rewrite', 'switching'] as const
        )
          .map((mode) => {
            const r = at10(mode);
            if (!r) return '';
            const d = usPerSent(r) - usPerSent(base);
            return `${mode} ${usPerSent(r).toFixed(2)} µs (${d >= 0 ? '+' : ''}${d.toFixed(2)} µs, ${d >= 0 ? '+' : ''}${((d / oursN10) * 100).toFixed(1)} % of ours)`;
          })
          .filter((x) => x !== '')
          .join(', ')}.`
      : 'Selection and rewriting: no N=10 figures for ours in this run to compare with.';
  return [
    summary,
    `The selection table is measured in-process, in a child process of its own (bench/fanout-select.ts): one \`Publication\` (VP8, the bot's q/h/f layers, or one layer) forwarding to N real \`Subscription\`s, each with its \`OutgoingStream\`: Publication.forward (descriptor parse, header-extension strip, metrics, one ForwardedPacket) then OutgoingStream.send per sink (layer filter, RtpMunger/Vp8Munger, the buffer copy once an origin moved, metrics) — the node's packet path. Isolated: werift's sender. Each stream's sender is a stand-in that keeps the buffer and returns, so werift's sendRtp, SRTP and the UDP write, which are the same for every mode and most of the end-to-end µs CPU/fwd pkt, are not in these figures; the ratio column sets what selection and rewriting add against the whole end-to-end cost. Input: 1/2/5 packets per frame on q/h/f (their bitrate caps in ~1200-byte packets at 30 fps; single layer: the top layer's 5), a keyframe every 10 frames on each layer. Sinks spread over the layers top first (N=1: f; N=10: 4 f, 3 h, 3 q), so a simulcast sink is handed 8 packets for the 1–5 it sends: "sent/in pkt" is what left per Publication.forward. settled: each sink on its layer from its first packet (numbers unchanged, the shared buffer sent as is). settled after a switch: each sink came from another layer once, so every packet is copied and renumbered. switching: every sink's target moves every ${SWITCH_EVERY_FRAMES} frames (a switch about every half second at 30 fps, far more often than an allocator does), Subscription.retarget as the allocator calls it, the switch at the target's next keyframe. µs/fwd pkt: CPU time of the process (process.cpuUsage, user + system, GC included, as in µs CPU/fwd pkt above) per Publication.forward, median of ${SELECT_ROUNDS} rounds of ${SELECT_ROUND_MS} ms after ${SELECT_WARMUP_MS} ms warm-up, divided by the packets sent per forward; µs/in pkt/sink: the same per forward and sink (every sink is handed every packet); spread: (highest − lowest round) / median. The synthetic source's per-packet numbering (a few byte writes) is inside the timing in every mode.`,
    'An end-to-end simulcast row (a --simulcast publisher in the ladder above) is not measured yet: the in-process table is the selection cost.',
  ];
}

function buildResult(
  sweeps: Sweep[],
  selection: SelectResult[],
  janusMissing: string | undefined,
): BenchResult {
  const columns: BenchColumn[] = [
    { key: 'system', label: 'forwarder' },
    { key: 'n', label: 'N', format: 'int' },
    { key: 'fwd', label: 'max loss-free fwd pkt/s', format: 'int' },
    { key: 'input', label: 'in pkt/s', format: 'int' },
    { key: 'us', label: 'µs CPU/fwd pkt', format: { significant: 3 } },
    { key: 'cpu', label: 'fwd CPU', format: 'int', suffix: ' %' },
    { key: 'p50', label: 'lat p50 ms', format: { decimals: 2 } },
    { key: 'p99', label: 'lat p99 ms', format: { decimals: 2 } },
    { key: 'hp50', label: '½-load p50', format: { decimals: 2 } },
    { key: 'hp99', label: '½-load p99', format: { decimals: 2 } },
    { key: 'el', label: 'EL p99 ms', format: { decimals: 1 } },
    { key: 'client', label: 'max client CPU', format: 'int', suffix: ' %' },
    { key: 'stop', label: 'next step' },
  ];
  const order = (s: Sweep) => ROW_ORDER.indexOf(s.system) * 1000 + s.n;
  const rows = [...sweeps]
    .sort((a, b) => order(a) - order(b))
    .map((s) => {
      const b = best(s);
      const h = half(s);
      return {
        system: LABEL[s.system],
        n: s.n,
        fwd: b?.fwdTarget ?? 0,
        input: b?.input ?? null,
        us: b?.usPerFwd ?? null,
        cpu: b ? b.fwdCpu * 100 : null,
        p50: b?.p50 ?? null,
        p99: b?.p99 ?? null,
        hp50: h?.p50 ?? null,
        hp99: h?.p99 ?? null,
        el: b?.elP99Ms ?? null,
        client: b ? Math.max(...b.clientCpu) * 100 : null,
        stop: stoppedBy(s),
      };
    });
  const targets: BenchTarget[] = [];
  const notes: string[] = [];
  const get = (system: System, n: number) => sweeps.find((s) => s.system === system && s.n === n);
  for (const n of FANOUTS) {
    const ours = get('ours', n);
    const naive = get('naive', n);
    const ceiling = get('ceiling', n);
    if (!ours || !naive || !ceiling) continue;
    // CPU per packet at the same rate: the highest step both passed without loss.
    const common = lossFree(ours)
      .map((x) => x.fwdTarget)
      .filter((r) => lossFree(naive).some((y) => y.fwdTarget === r))
      .at(-1);
    if (common !== undefined) {
      const o = lossFree(ours).find((x) => x.fwdTarget === common) as Step;
      const a = lossFree(naive).find((x) => x.fwdTarget === common) as Step;
      const ratio = o.usPerFwd / a.usPerFwd;
      targets.push({
        what: `N=${n} forwarding cost, ours / naive werift, µs CPU per forwarded packet at ${common.toLocaleString('en-US')}/s`,
        target: `≤ ${TARGET_COST_RATIO}×`,
        value: `${ratio.toFixed(2)}× (${o.usPerFwd.toFixed(1)} vs ${a.usPerFwd.toFixed(1)} µs)`,
        pass: ratio <= TARGET_COST_RATIO,
      });
    }
    const bo = best(ours)?.fwdTarget ?? 0;
    const bc = best(ceiling)?.fwdTarget ?? 0;
    if (bc > 0) {
      const ratio = bo / bc;
      const clientBound = (s: Sweep) => stoppedBy(s).includes('CLIENT');
      targets.push({
        what: `N=${n} throughput, ours / ceiling, max loss-free forwarded pkt/s`,
        target: `≥ ${TARGET_THROUGHPUT_RATIO}×`,
        value: `${ratio.toFixed(2)}× (${bo.toLocaleString('en-US')} vs ${bc.toLocaleString('en-US')}/s${clientBound(ceiling) || clientBound(ours) ? '; a client process saturated first, see the table' : ''})`,
        pass: ratio >= TARGET_THROUGHPUT_RATIO,
      });
    }
    const h = half(ours);
    if (h) {
      targets.push({
        what: `N=${n} added latency below saturation (ours at ${h.fwdTarget.toLocaleString('en-US')} fwd pkt/s)`,
        target: 'p50 < 1 ms, p99 < 5 ms',
        value: `p50 ${h.p50.toFixed(2)} ms, p99 ${h.p99.toFixed(2)} ms`,
        pass: h.p50 < 1 && h.p99 < 5,
      });
    }
  }
  const coarse = sweeps.filter((s) => s.coarse).map((s) => `${s.system} N=${s.n}`);
  notes.push(
    `Each row: the highest step of the ladder (${LADDER.map((x) => `${x / 1000}k`).join(', ')} forwarded pkt/s, input = that / N, input capped at ${MAX_INPUT.toLocaleString('en-US')}/s) where the subscribers together lost ≤ ${LOSS_LIMIT * 100} % (a step that lost runs once more: this VM stalls now and then); "next step" is the step that failed (twice) and which process was busy then (> ${SATURATED * 100} % of a core). The steps are ×1.6 apart: the true limit lies between the row and the next step.${coarse.length > 0 ? ` Coarser sweep (every other step, to keep the run short): ${coarse.join(', ')}.` : ''}`,
    `µs CPU/fwd pkt: utime + stime of the forwarder process (/proc/<pid>/stat, 10 ms ticks) over the step (${STEP_MS} ms sending + ${DRAIN_MS} ms drain) divided by input packets × N; it includes the forwarder's fixed costs (timers, RTCP, metrics) at that rate. fwd CPU is the same time over wall time (100 % = one core). The ours/naive ratio is taken at the highest rate both passed without loss.`,
    `Latency: send time written into the payload by the publisher process (performance.timeOrigin + now(), the bots' probe) vs arrival at a subscriber's onReceiveRtp (werift) or after decryption (ceiling), over all subscribers; 10 µs histogram buckets. It includes both clients' werift/crypto work and their event loops, so it is an upper bound on what the forwarder adds. "½-load" is the highest loss-free step at ≤ half of the row's rate. EL p99: event-loop delay p99 of the forwarder during the step (ours: nodejs_eventloop_lag_p99_seconds from /metrics, prom-client resets it on each scrape; naive and ceiling: monitorEventLoopDelay with the same 10 ms resolution; Janus has none).`,
    `Setup: ${PAYLOAD_SIZE}-byte VP8-looking RTP payloads (descriptor, keyframe on each step's first packet, probe trailer), ~1200 bytes with the header; one packet per 1 ms timer tick batch. ours: one node process (--dev, SFU_LOG_LEVEL=info); the publisher is a bot (its own synthetic source silenced, the benchmark's packets sent through its werift sender), subscribers are bots joining the same room. naive: a werift PeerConnection per peer, offers over a local HTTP endpoint, same peerConfig as the bots (max-bundle, iceStunGatherTimeout 0, 127.0.0.1, no header extensions). ceiling: RTP header as AAD, AES-128-GCM with a 16-byte tag, a KeyObject per key and a cipher object per packet, one dgram socket in, one per receiver. janus: see below. The publisher runs in its own process; subscribers in 1 (N=1), 2 (N=10) or 3 (N=50) processes. The machine has 2 cores: the forwarder shares them with the client processes, so its throughput is that of whatever CPU the clients leave it. Every UDP socket of ours, naive, ceiling and the clients has a ${BENCH_UDP_BUFFER / 1024 / 1024} MiB receive buffer (the node's SFU_UDP_RECEIVE_BUFFER; Janus keeps its own), so a busy client does not end a sweep by overflowing Linux's 208 KiB default.`,
  );
  const pairs: PeerPair[] = FANOUTS.map((n) => ({
    n,
    ours: get('ours', n),
    peer: get('janus', n),
  }));
  notes.push(...peerNotes(pairs, LOSS_LIMIT, janusVersion ?? '', janusMissing));
  const oursN10 = ((s) => (s ? best(s)?.usPerFwd : undefined))(get('ours', 10));
  notes.push(...selectionNotes(selection, oursN10));
  const tables = [selectionTable(selection, oursN10)];
  if (!janusMissing && !SELECTION_ONLY) tables.unshift(peerTable(pairs, LOSS_LIMIT));
  return finishedResult(NAME, 'Fan-out: 1 publisher to N subscribers', started, {
    columns,
    rows,
    tables,
    targets,
    notes,
  });
}

async function main(): Promise<void> {
  const janusMissing = janusUnavailable();
  const systems = SYSTEMS.filter((s) => s !== 'janus' || !janusMissing);
  if (janusMissing && !SELECTION_ONLY) {
    console.error(`[${NAME}] ${janusMissing}; running the other systems without it`);
  }
  const sweeps: Sweep[] = [];
  let selection: SelectResult[] = [];
  const live = new Set<Child>();
  const kill = () => {
    for (const c of live) c.proc.kill('SIGKILL');
  };
  process.on('exit', kill);
  try {
    if (!SELECTION_ONLY) for (const system of systems) await sweepSystem(system, sweeps, live);
    selection = await measureSelection(live);
  } finally {
    progress.done();
    kill();
  }
  emitResult(buildResult(sweeps, selection, janusMissing));
}

await main();
