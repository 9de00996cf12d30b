/**
 * Join and relay set-up latency: how long a subscriber waits from `Bot.connect` to the first
 * video keyframe of a publisher already in the room, when the publisher is on the same node
 * (the baseline) and when it is on another node, so that the join opens a fresh relay link.
 * Real node processes, a real redis-server and werift bots on loopback.
 *
 *   npm run bench -- relay
 *   node --conditions=source --import tsx bench/relay.bench.ts   (prints, writes nothing)
 *
 * RELAY_BENCH_DEBUG=1 prints every join on stderr.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Bot, nowMs } from '@geosfu/client/bot';
import { metricValue } from '../test/helpers/metrics.js';
import { type NodeProcess, startNode } from '../test/helpers/node-process.js';
import { startRedis } from '../test/helpers/redis.js';
import { emitResult, Progress } from './lib.js';
import {
  type Case,
  type CaseKey,
  CLEANUP_TIMEOUT_MS,
  DEBUG,
  HEARTBEAT_MS,
  HOST,
  KEYFRAME_TIMEOUT_MS,
  ms0,
  NAME,
  POLL_MS,
  PUBLISHER,
  QUIET_MS,
  ROUNDS,
  type Round,
  TTL_MS,
} from './relay-common.js';
import { buildResult } from './relay-result.js';

/** When the publisher received PLIs, on the bots' clock (nowMs). */
const pliTimes: number[] = [];

async function main(): Promise<void> {
  const started = Date.now();
  const progress = new Progress(`[${NAME}]`);
  progress.step('starting redis-server and three nodes (one alone, ams + hcm in a cluster)');

  const redis = await startRedis();
  const cluster = {
    REDIS_URL: redis.url,
    SFU_REGISTRY_TTL_MS: String(TTL_MS),
    SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
    SFU_DEFAULT_REGION: 'ams',
    // A handful of lines per join, among them "relay PLI failed": the notes quote them.
    SFU_LOG_LEVEL: 'debug',
  };
  const processes: NodeProcess[] = [];
  const bots = new Set<Bot>();
  const cases: Case[] = [];
  let relaySetup = { coldMs: Number.NaN, meanMs: Number.NaN, count: 0 };
  let linksOpened = 0;
  try {
    const [solo, ams, hcm] = await Promise.all([
      startNode({ region: 'fra', nodeId: 'node-solo', env: { SFU_LOG_LEVEL: 'debug' } }),
      startNode({ region: 'ams', nodeId: 'node-ams', env: cluster }),
      startNode({ region: 'hcm', nodeId: 'node-hcm', env: cluster }),
    ]);
    processes.push(solo, ams, hcm);
    const publish = async (node: NodeProcess, room: string) => {
      const bot = await Bot.connect({
        url: node.url,
        route: false,
        room,
        identity: PUBLISHER,
        // No periodic keyframes: only the node's PLIs produce them after the first.
        publish: { video: true, audio: true, keyframeIntervalMs: 600_000 },
        subscribe: false,
        hostAddresses: HOST,
      });
      bots.add(bot);
      bot.on('pli', () => pliTimes.push(nowMs()));
      // Past the publisher's own first keyframe, as in a room that has been running a while.
      await sleep(1_000);
      return bot;
    };
    const participants = (node: NodeProcess) => metricValue(node.metricsUrl, 'sfu_participants');
    const links = (node: NodeProcess, direction: 'in' | 'out') =>
      metricValue(node.metricsUrl, 'sfu_relay_links', { direction });

    // --- baseline: one node, no Redis; publisher and subscriber on it.
    const soloPub = await publish(solo, 'bench-local');
    const soloSetup = {
      node: solo,
      room: 'bench-local',
      bots,
      settled: async () => (await participants(solo)) === 1,
    };
    cases.push(
      await runCase(progress, {
        ...soloSetup,
        key: 'local',
        id: 'baseline',
        label: 'local join: one node (no Redis), publisher on the same node',
        quietMs: QUIET_MS,
      }),
      await runCase(progress, {
        ...soloSetup,
        key: 'burst',
        id: 'baseline′',
        label: 'the same, back-to-back: each join starts as soon as the previous one left',
        quietMs: 0,
      }),
    );
    await closeBot(bots, soloPub);
    await solo.stop();

    // --- the cluster: publisher on ams.
    const amsPub = await publish(ams, 'bench-relay');
    cases.push(
      await runCase(progress, {
        key: 'cluster',
        id: '(a)',
        label: 'local join on a cluster node: ams (Redis room store), publisher on ams',
        node: ams,
        room: 'bench-relay',
        bots,
        quietMs: QUIET_MS,
        settled: async () => (await participants(ams)) === 1,
        check: async () => {
          if ((await links(ams, 'out')) !== 0) throw new Error('a local join opened a relay link');
        },
      }),
    );

    // --- relay: each subscriber on hcm, alone there, so each join opens a fresh link.
    const openedBefore = countLogs(ams, 'relay link opened');
    const setupBefore = await histogram(ams, 'sfu_relay_setup_duration_seconds');
    let setupAfterCold = setupBefore;
    let linkSetups = setupBefore;
    cases.push(
      await runCase(progress, {
        key: 'relay',
        id: '(b)',
        label: 'relayed join: subscriber on hcm, publisher on ams; each join opens a new link',
        node: hcm,
        room: 'bench-relay',
        bots,
        quietMs: QUIET_MS,
        settled: async () =>
          (await links(ams, 'out')) === 0 &&
          (await links(hcm, 'in')) === 0 &&
          (await participants(hcm)) === 0,
        precheck: async () => {
          if ((await links(ams, 'out')) !== 0 || (await participants(hcm)) !== 0)
            throw new Error('hcm is not empty before a relayed join');
          linkSetups = await histogram(ams, 'sfu_relay_setup_duration_seconds');
        },
        check: async (round) => {
          if ((await links(ams, 'out')) !== 1) throw new Error('no relay link from ams');
          // When the link connected: its "opened" log line plus the set-up time ams observed.
          const setup = await histogram(ams, 'sfu_relay_setup_duration_seconds');
          const opened = ams.logs.findLast(
            (e) => e.msg === 'relay link opened' && Number(e.time) >= round.startedAt - 50,
          );
          if (setup.count === linkSetups.count + 1 && opened)
            round.linkUpMs =
              Number(opened.time) - round.startedAt + (setup.sum - linkSetups.sum) * 1000;
        },
        afterCold: async () => {
          setupAfterCold = await histogram(ams, 'sfu_relay_setup_duration_seconds');
        },
      }),
    );
    const setupAfter = await histogram(ams, 'sfu_relay_setup_duration_seconds');
    linksOpened = countLogs(ams, 'relay link opened') - openedBefore;
    relaySetup = {
      coldMs:
        ((setupAfterCold.sum - setupBefore.sum) * 1000) /
        (setupAfterCold.count - setupBefore.count),
      meanMs:
        ((setupAfter.sum - setupAfterCold.sum) * 1000) / (setupAfter.count - setupAfterCold.count),
      count: setupAfter.count - setupAfterCold.count,
    };
    await closeBot(bots, amsPub);
    progress.step('closing');
  } finally {
    await Promise.allSettled([...bots].map((b) => b.close()));
    await Promise.allSettled(processes.map((p) => p.stop()));
    await redis.stop();
    progress.done();
  }

  emitResult(buildResult(cases, relaySetup, linksOpened, processes, started));
}

// ---------------------------------------------------------------------------------------
// One case: a cold join, then ROUNDS timed joins, each closed and cleaned up before the next.

interface CaseSetup {
  key: CaseKey;
  id: string;
  label: string;
  node: NodeProcess;
  room: string;
  bots: Set<Bot>;
  /** Each join starts once the publisher's last PLI is this long past. */
  quietMs: number;
  /** True once the nodes are back where a round starts. */
  settled: () => Promise<boolean>;
  /** Before each join: throws when the round would not measure what it says. */
  precheck?: () => Promise<void>;
  /** After each first keyframe. */
  check?: (round: Round) => Promise<void>;
  afterCold?: () => Promise<void>;
}

async function runCase(progress: Progress, setup: CaseSetup): Promise<Case> {
  progress.step(`${setup.id} ${setup.label}`);
  const rounds: Round[] = [];
  // The publisher's own join sends no media out, so it adds no sample; the case's node
  // serves nothing but the case's joins meanwhile.
  const joinsBefore = await histogram(setup.node, 'sfu_join_duration_seconds');
  for (let index = 0; index <= ROUNDS; index++) {
    progress.detail(index === 0 ? 'cold join' : `join ${index}/${ROUNDS}`);
    await setup.precheck?.();
    // A PLI can come in while waiting (one held back by the gap): wait again from that one.
    for (;;) {
      const wait = (pliTimes.at(-1) ?? Number.NEGATIVE_INFINITY) + setup.quietMs - nowMs();
      if (wait <= 0) break;
      await sleep(wait);
    }
    rounds.push(await joinOnce(setup, index));
    if (index === 0) await setup.afterCold?.();
  }
  const joinsAfter = await histogram(setup.node, 'sfu_join_duration_seconds');
  const nodeJoinMs =
    ((joinsAfter.sum - joinsBefore.sum) * 1000) / (joinsAfter.count - joinsBefore.count);
  return { key: setup.key, id: setup.id, label: setup.label, rounds, nodeJoinMs };
}

async function joinOnce(setup: CaseSetup, index: number): Promise<Round> {
  const lastPli = pliTimes.at(-1);
  const startedAt = nowMs();
  const round: Round = {
    index,
    startedAt,
    joinedMs: Number.NaN,
    firstPacketMs: Number.NaN,
    pliMs: Number.NaN,
    firstKeyframeMs: Number.NaN,
    cleanupMs: Number.NaN,
    plisMs: [],
    linkUpMs: Number.NaN,
    windowMs: Number.NaN,
    videoPackets: 0,
    sinceLastPliMs: lastPli === undefined ? Number.POSITIVE_INFINITY : startedAt - lastPli,
  };
  let bot: Bot | undefined;
  try {
    bot = await Bot.connect({
      url: setup.node.url,
      route: false,
      room: setup.room,
      identity: `sub-${setup.key}-${index}`,
      hostAddresses: HOST,
    });
    setup.bots.add(bot);
    round.joinedMs = nowMs() - startedAt;
    const keyframeAt = await bot.waitForKeyframe(PUBLISHER, 'video', KEYFRAME_TIMEOUT_MS);
    round.firstKeyframeMs = keyframeAt - startedAt;
    round.pliMs =
      pliTimes
        .filter((t) => t >= startedAt && t <= keyframeAt)
        .map((t) => t - startedAt)
        .at(-1) ?? Number.NaN;
    await setup.check?.(round);
  } catch (error) {
    round.error = (error as Error).message;
  }
  round.windowMs = Number.isFinite(round.firstKeyframeMs)
    ? round.firstKeyframeMs
    : nowMs() - startedAt;
  const video = bot
    ?.stats()
    .received.find((r) => r.participant === PUBLISHER && r.kind === 'video');
  round.firstPacketMs = (video?.firstPacketAtMs ?? Number.NaN) - startedAt;
  round.videoPackets = video?.packets ?? 0;
  round.plisMs = pliTimes
    .filter((t) => t >= startedAt && t <= startedAt + round.windowMs)
    .map((t) => t - startedAt);
  const closing = nowMs();
  if (bot) await closeBot(setup.bots, bot);
  await waitFor(`round ${index} of ${setup.id} to clean up`, setup.settled);
  round.cleanupMs = nowMs() - closing;
  if (DEBUG) {
    const plis = round.plisMs.map((t) => `+${Math.round(t)}`).join(' ');
    process.stderr.write(
      `${setup.id} #${index}: joined ${ms0(round.joinedMs)}, 1st packet ${ms0(round.firstPacketMs)}, PLIs ${plis || '-'}, keyframe ${ms0(round.firstKeyframeMs)} (previous PLI ${ms0(round.sinceLastPliMs)} before), clean-up ${ms0(round.cleanupMs)}${round.error ? `; ${round.error}` : ''}\n`,
    );
  }
  return round;
}

async function closeBot(bots: Set<Bot>, bot: Bot): Promise<void> {
  await bot.close();
  bots.delete(bot);
}

async function waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + CLEANUP_TIMEOUT_MS;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** A Prometheus histogram's _sum and _count. */
async function histogram(node: NodeProcess, name: string): Promise<{ sum: number; count: number }> {
  return {
    sum: await metricValue(node.metricsUrl, `${name}_sum`),
    count: await metricValue(node.metricsUrl, `${name}_count`),
  };
}

function countLogs(node: NodeProcess, msg: string): number {
  return node.logs.filter((entry) => entry.msg === msg).length;
}

await main();
