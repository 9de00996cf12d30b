/**
 * The relay benchmark's result: per case the percentiles of the timed joins, the targets, and
 * notes that explain the slow and failed joins from the rounds and what the nodes logged.
 */
import { KEYFRAME_REQUEST_GAP_MS } from '@geosfu/node';
import type { NodeProcess } from '../test/helpers/node-process.js';
import {
  type BenchColumn,
  type BenchResult,
  type BenchTarget,
  finishedResult,
  interpolatedPercentile,
} from './lib.js';
import {
  type Case,
  type CaseKey,
  HEARTBEAT_MS,
  KEYFRAME_TIMEOUT_MS,
  ms0,
  NAME,
  POLL_MS,
  QUIET_MS,
  ROUNDS,
  type Round,
  TARGET_LOCAL_MS,
  TARGET_RELAY_MS,
  TTL_MS,
} from './relay-common.js';

interface Summary {
  ok: number;
  failed: number;
  joined: number;
  firstPacket: number;
  pli: number;
  p50: number;
  p95: number;
  max: number;
  cold: number;
  cleanup: number;
  sinceLastPli: number;
  linkUp: number;
  /** Joins that got their keyframe only from a later PLI than the first. */
  secondPli: number;
  /** Keyframe p50 of the joins that the first PLI served, and of the others. */
  firstPliP50: number;
  secondPliP50: number;
}

function summarize(c: Case): Summary {
  const timed = c.rounds.filter((r) => r.index > 0);
  const ok = timed.filter((r) => r.error === undefined);
  const sorted = (pick: (r: Round) => number) =>
    ok
      .map(pick)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
  const p50 = (pick: (r: Round) => number) => interpolatedPercentile(sorted(pick), 50);
  const keyframes = sorted((r) => r.firstKeyframeMs);
  const cold = c.rounds.find((r) => r.index === 0);
  return {
    ok: ok.length,
    failed: timed.length - ok.length,
    joined: p50((r) => r.joinedMs),
    firstPacket: p50((r) => r.firstPacketMs),
    pli: p50((r) => r.pliMs),
    p50: interpolatedPercentile(keyframes, 50),
    p95: interpolatedPercentile(keyframes, 95),
    max: keyframes.at(-1) ?? Number.NaN,
    cold: cold?.error === undefined ? (cold?.firstKeyframeMs ?? Number.NaN) : Number.NaN,
    cleanup: p50((r) => r.cleanupMs),
    sinceLastPli: p50((r) => r.sinceLastPliMs),
    linkUp: p50((r) => r.linkUpMs),
    secondPli: ok.filter((r) => r.plisMs.length > 1).length,
    firstPliP50: interpolatedPercentile(
      ok
        .filter((r) => r.plisMs.length <= 1)
        .map((r) => r.firstKeyframeMs)
        .sort((a, b) => a - b),
      50,
    ),
    secondPliP50: interpolatedPercentile(
      ok
        .filter((r) => r.plisMs.length > 1)
        .map((r) => r.firstKeyframeMs)
        .sort((a, b) => a - b),
      50,
    ),
  };
}

/** A failed join misses the target whatever the others did. */
const failedText = (s: Summary) =>
  s.failed > 0
    ? `; ${s.failed} of ${s.ok + s.failed} joins got no keyframe within ${KEYFRAME_TIMEOUT_MS / 1000} s`
    : '';
/** "80 ms longer" / "12 ms shorter". */
const longer = (delta: number) => `${ms0(Math.abs(delta))} ${delta >= 0 ? 'longer' : 'shorter'}`;

export function buildResult(
  cases: Case[],
  relaySetup: { coldMs: number; meanMs: number; count: number },
  linksOpened: number,
  processes: NodeProcess[],
  started: number,
): BenchResult {
  const summaries = new Map(cases.map((c) => [c.key, summarize(c)]));
  const get = (key: CaseKey) => {
    const s = summaries.get(key);
    if (!s) throw new Error(`no case "${key}"`);
    return s;
  };
  const local = get('local');
  const burst = get('burst');
  const cluster = get('cluster');
  const relay = get('relay');

  const columns: BenchColumn[] = [
    { key: 'id', label: '' },
    { key: 'case', label: 'case' },
    { key: 'n', label: 'joins', format: 'int' },
    { key: 'joined', label: 'joined', format: 'int' },
    { key: 'linkUp', label: 'link up', format: 'int' },
    { key: 'firstPacket', label: '1st packet', format: 'int' },
    { key: 'pli', label: 'PLI', format: 'int' },
    { key: 'secondPli', label: '2nd PLI', format: 'int' },
    { key: 'p50', label: 'keyframe p50', format: 'int' },
    { key: 'p95', label: 'p95', format: 'int' },
    { key: 'max', label: 'max', format: 'int' },
    { key: 'cold', label: 'cold', format: 'int' },
    { key: 'node', label: 'node join→media', format: 'int' },
    { key: 'vsLocal', label: '× baseline', format: { significant: 2 }, suffix: '×' },
  ];
  const rows = cases.map((c) => {
    const s = get(c.key);
    return {
      id: c.id,
      case: c.label,
      n: s.failed > 0 ? `${s.ok} (+${s.failed} failed)` : s.ok,
      joined: s.joined,
      linkUp: Number.isFinite(s.linkUp) ? s.linkUp : null,
      firstPacket: s.firstPacket,
      pli: s.pli,
      secondPli: s.secondPli,
      p50: s.p50,
      p95: s.p95,
      max: s.max,
      cold: s.cold,
      node: c.nodeJoinMs,
      vsLocal: s.p50 / local.p50,
    };
  });

  const targets: BenchTarget[] = [
    {
      what: 'first keyframe after join, local (baseline), p50',
      target: `< ${TARGET_LOCAL_MS} ms`,
      value: `${ms0(local.p50)} (p95 ${ms0(local.p95)}, max ${ms0(local.max)})${failedText(local)}`,
      pass: local.failed === 0 && local.p50 < TARGET_LOCAL_MS,
    },
    {
      what: 'relay set-up: join on hcm to the first keyframe relayed from ams (b), p50',
      target: `< ${TARGET_RELAY_MS} ms`,
      value: `${ms0(relay.p50)} (p95 ${ms0(relay.p95)}, max ${ms0(relay.max)}; the link alone: ${ms0(relaySetup.meanMs)} mean as ams measured it)${failedText(relay)}`,
      pass: relay.failed === 0 && relay.p50 < TARGET_RELAY_MS,
    },
  ];

  const notes = [
    `What the relay costs: a relayed join waits ${longer(relay.p50 - local.p50)} for its first keyframe than a local join on the lone node (p50 ${ms0(relay.p50)} vs ${ms0(local.p50)}, ${(relay.p50 / local.p50).toFixed(2)}×), and ${longer(relay.p50 - cluster.p50)} than a local join on ams in the same cluster (${ms0(cluster.p50)}, row (a): the Redis room store, no link). The link (up at ${ms0(relay.linkUp)}, p50) is built while the subscriber's own PeerConnection is (first packet at ${ms0(relay.firstPacket)}), so it adds little by itself.${relay.secondPli > 0 ? ` But relayed joins are bimodal: ${relay.secondPli} of ${relay.ok} needed a second PLI (column "2nd PLI", see below) and got their keyframe after ${ms0(relay.secondPliP50)} (p50) instead of ${ms0(relay.firstPliP50)}; the p50 and the ratio move with how many joins fall on either side, from run to run.` : ''}`,
    `Relay link set-up as ams measured it (sfu_relay_setup_duration_seconds, link opened → PeerConnection connected): mean ${ms0(relaySetup.meanMs)} over the ${relaySetup.count} links of the timed joins; the cold link ${ms0(relaySetup.coldMs)}. ams opened ${linksOpened} links for the ${ROUNDS + 1} joins on hcm (${linksOpened === ROUNDS + 1 ? 'a fresh link for every join, as intended' : 'not one per join: some rounds did not start without a link'}); after a subscriber's close the link was gone (ams out = 0, hcm in = 0, hcm empty) ${ms0(relay.cleanup)} later (p50).`,
    `Back-to-back joins (baseline′) wait for the node's PLI throttle: the node asks a publisher for a keyframe when a subscriber's PeerConnection connects, but at most once per ${KEYFRAME_REQUEST_GAP_MS} ms per publication (KEYFRAME_REQUEST_GAP_MS), holding a later request back until the gap is over. Each of those joins started ${ms0(burst.sinceLastPli)} (p50) after the previous join's PLI, so its own PLI reached the publisher at ${ms0(burst.pli)} instead of ${ms0(local.pli)} and its keyframe came ${longer(burst.p50 - local.p50)}. The other rows start each join ≥ ${QUIET_MS} ms after the publisher's last PLI, to measure a join by itself; joins that arrive together (a meeting's start) pay up to ${KEYFRAME_REQUEST_GAP_MS} ms more.`,
    ...outlierNotes(cases, processes),
    `Columns, all ms from just before Bot.connect on the bots' clock, p50 over the timed joins: "joined" when Bot.connect resolved (dev token over HTTP, websocket, join answered); "link up" (relayed joins) when ams's relay link connected (its "relay link opened" log line plus the set-up time it observed, on ams's clock); "1st packet" the publisher's first video packet; "PLI" when the publisher received the PLI that produced the keyframe; "keyframe" its first video keyframe (p50, p95, max). "cold" is the case's first join, not in the percentiles (fresh node code paths, first link). "node join→media" is the mean of sfu_join_duration_seconds on the subscriber's node (join message → first media packet sent to that participant) over all the case's joins, cold one included. "2nd PLI" counts joins that got their keyframe only from a later PLI than the first.`,
    `Setup: three node processes (node --conditions=source --import tsx, --dev) on 127.0.0.1 and one redis-server: a lone node (no REDIS_URL) for the baseline rows, ams and hcm on Redis (registry TTL ${TTL_MS} ms, heartbeat ${HEARTBEAT_MS} ms). The publisher bot sends VP8 video and Opus audio with keyframeIntervalMs 600 000, so every keyframe a subscriber gets is one its join asked for. Subscribers join with route: false, ICE on 127.0.0.1, a new identity each time; every bot runs in the benchmark's process.`,
    `Method: per case one cold join, then ${ROUNDS} timed joins one after the other; after each, the bot closes and the next join waits until the node(s) are back where they started (participants, relay links; /metrics polled every ${POLL_MS} ms). Percentiles interpolate between ranks (with ${ROUNDS} samples a nearest-rank p95 would be the max). Loopback has no network delay: these are CPU and protocol round trips (ICE, DTLS, SDP through Redis) on a 2-core VM shared by three nodes, redis-server and the bots.`,
  ];

  return finishedResult(NAME, 'Join and relay set-up latency', started, {
    columns,
    rows,
    targets,
    notes,
  });
}

/** What the nodes logged in a round's window: warnings, errors, relay and PLI events. */
function windowLogs(r: Round, processes: NodeProcess[]): string[] {
  const lines = processes.flatMap((p) =>
    p.logs
      .filter((e) => {
        const time = Number(e.time);
        return (
          time >= r.startedAt &&
          time <= r.startedAt + r.windowMs &&
          (Number(e.level) >= 40 || /relay|keyframe|pli|timed out/i.test(String(e.msg)))
        );
      })
      .map((e) => {
        const err = (e.err as { message?: unknown } | undefined)?.message;
        return `${p.region} +${Math.round(Number(e.time) - r.startedAt)} "${e.msg}"${err ? ` (${String(err).slice(0, 80)})` : ''}`;
      }),
  );
  return [...new Set(lines)];
}

const plisText = (r: Round) => r.plisMs.map((t) => `+${Math.round(t)}`).join('/') || 'none';

/**
 * Why joins were slow or failed, from the rounds themselves: joins whose first PLI came too
 * early to help them, keyframe requests the relaying node could not send, timed joins well
 * over their case's median, and failed joins, with what the nodes logged meanwhile.
 */
function outlierNotes(cases: Case[], processes: NodeProcess[]): string[] {
  const notes: string[] = [];
  for (const c of cases) {
    const timed = c.rounds.filter((r) => r.index > 0);
    const ok = timed.filter((r) => r.error === undefined);
    // More than one PLI before the keyframe: the keyframe of the first one did not reach the
    // subscriber, and the next request waited for the gap.
    const again = ok.filter((r) => r.plisMs.length > 1);
    if (again.length > 0 && c.key !== 'burst') {
      const others = ok.filter((r) => r.plisMs.length <= 1).map((r) => r.firstKeyframeMs);
      // Two processes' clocks: a few ms of slack.
      const linkFirst = again.filter(
        (r) =>
          r.linkUpMs <= (r.plisMs[0] as number) + 5 && r.linkUpMs >= (r.plisMs[0] as number) - 30,
      ).length;
      const list = again
        .map((r) => {
          const link = Number.isFinite(r.linkUpMs) ? `link up +${Math.round(r.linkUpMs)}, ` : '';
          return `#${r.index}: ${link}PLIs ${plisText(r)}, first packet +${Math.round(r.firstPacketMs)}, keyframe +${Math.round(r.firstKeyframeMs)}`;
        })
        .join('; ');
      notes.push(
        `A second PLI: in ${again.length} of ${ok.length} joins of ${c.id} the keyframe of the first PLI never reached the subscriber (it went out before the subscriber's first video packet), and the next request was held back by the ${KEYFRAME_REQUEST_GAP_MS} ms gap: keyframe p50 ${ms0(median(again.map((r) => r.firstKeyframeMs)))} for those, ${ms0(median(others))} for the others.${c.key === 'relay' && linkFirst > 0 ? ` In ${linkFirst} of them the first PLI is the one ams's RelayLink sends as soon as its PeerConnection connects; that keyframe crossed the link before hcm could forward it to the subscriber (hcm's end of the link or the subscriber's PeerConnection not up yet). The second comes from hcm when the subscriber's PeerConnection connects, over the link, and waits on ams for the gap since the first.` : ''} Joins (ms after Bot.connect): ${list}.`,
      );
    }
    // The relaying node's keyframe request, lost: RelayReceiver sends the PLI while its
    // PeerConnection has no SRTP context yet, werift throws, the node logs it at debug level.
    const lost = timed.filter((r) =>
      windowLogs(r, processes).some((line) => line.includes('"relay PLI failed"')),
    );
    if (lost.length > 0) {
      notes.push(
        `Lost keyframe requests: in ${lost.length} of ${timed.length} joins of ${c.id} hcm logged "relay PLI failed" (a TypeError inside werift, whose SRTP context does not exist yet): it asked for a keyframe over a relay link whose DTLS was not up on its side, the request was dropped, and hcm's publication still counted it against the ${KEYFRAME_REQUEST_GAP_MS} ms gap. Nothing asks again; such a join got its keyframe only when ams's own request on link-up reached it in time (${lost.filter((r) => r.error === undefined).length} did, ${lost.filter((r) => r.error !== undefined).length} failed). Joins: ${lost
          .map((r) => {
            const at = windowLogs(r, processes)
              .filter((line) => line.includes('"relay PLI failed"'))
              .map((line) => line.split(' ')[1])
              .join('/');
            return `#${r.index} (failed PLI ${at}, ${r.error === undefined ? `keyframe +${Math.round(r.firstKeyframeMs)}` : 'no keyframe'})`;
          })
          .join(', ')}.`,
      );
    }
    const s = summarize(c);
    const limit = Math.max(1.5 * s.p50, s.p50 + 150);
    for (const r of timed) {
      const failed = r.error !== undefined;
      // Slow for a reason a note above gives already.
      if (!failed && (!(r.firstKeyframeMs > limit) || (r.plisMs.length > 1 && c.key !== 'burst')))
        continue;
      const events = windowLogs(r, processes);
      const link = Number.isFinite(r.linkUpMs) ? `, link up +${Math.round(r.linkUpMs)}` : '';
      notes.push(
        `${failed ? 'Failed' : 'Slow'} join: ${c.id} round ${r.index}: ${failed ? r.error : `keyframe after ${ms0(r.firstKeyframeMs)}`} (joined ${ms0(r.joinedMs)}${link}, first video packet ${ms0(r.firstPacketMs)}, ${r.videoPackets} video packets, PLIs at ${plisText(r)}); the nodes logged ${events.length > 0 ? events.slice(0, 8).join('; ') : 'nothing unusual in that window'}.`,
      );
    }
  }
  return notes;
}

const median = (values: number[]) =>
  interpolatedPercentile(
    [...values].sort((x, y) => x - y),
    50,
  );
