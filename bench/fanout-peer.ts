/**
 * The fan-out benchmark's comparison with a peer SFU, Janus (bench/fanout.bench.ts runs it in
 * the same run as ours, bench/janus-server.ts starts it): per N, ours against Janus at the
 * highest rate both forwarded without loss, and the highest rate each did.
 */
import type { BenchColumn, BenchSubTable } from './lib.js';

/** What the comparison reads of one step of a sweep (fanout.bench.ts's Step). */
export interface LadderStep {
  fwdTarget: number;
  loss: number;
  usPerFwd: number;
  p50: number;
}

/** What it reads of one sweep: one system at one N. */
export interface LadderSweep {
  n: number;
  steps: LadderStep[];
}

export interface PeerPair {
  n: number;
  ours: LadderSweep | undefined;
  peer: LadderSweep | undefined;
}

interface Compared {
  n: number;
  /** The highest step both passed without loss, and each one's figures there. */
  common?: { rate: number; ours: LadderStep; peer: LadderStep };
  oursBest: number;
  peerBest: number;
}

function compare(pair: PeerPair, lossLimit: number): Compared | undefined {
  if (!pair.ours || !pair.peer) return undefined;
  const lossFree = (s: LadderSweep) => s.steps.filter((x) => x.loss <= lossLimit);
  const ours = lossFree(pair.ours);
  const peer = lossFree(pair.peer);
  const rate = ours
    .map((x) => x.fwdTarget)
    .filter((r) => peer.some((y) => y.fwdTarget === r))
    .at(-1);
  const o = ours.find((x) => x.fwdTarget === rate);
  const p = peer.find((x) => x.fwdTarget === rate);
  return {
    n: pair.n,
    ...(rate !== undefined && o && p ? { common: { rate, ours: o, peer: p } } : {}),
    oursBest: ours.at(-1)?.fwdTarget ?? 0,
    peerBest: peer.at(-1)?.fwdTarget ?? 0,
  };
}

/** The table: one row per N where both ran. */
export function peerTable(pairs: PeerPair[], lossLimit: number): BenchSubTable {
  const columns: BenchColumn[] = [
    { key: 'n', label: 'N', format: 'int' },
    { key: 'rate', label: 'at fwd pkt/s (both loss-free)', format: 'int' },
    { key: 'ours', label: 'ours µs CPU/fwd pkt', format: { significant: 3 } },
    { key: 'janus', label: 'Janus µs CPU/fwd pkt', format: { significant: 3 } },
    { key: 'cost', label: 'ours / Janus CPU', format: { decimals: 2 }, suffix: '×' },
    { key: 'op50', label: 'ours lat p50 ms', format: { decimals: 2 } },
    { key: 'jp50', label: 'Janus lat p50 ms', format: { decimals: 2 } },
    { key: 'oursBest', label: 'ours max loss-free fwd pkt/s', format: 'int' },
    { key: 'janusBest', label: 'Janus max loss-free fwd pkt/s', format: 'int' },
    { key: 'throughput', label: 'ours / Janus throughput', format: { decimals: 2 }, suffix: '×' },
  ];
  const rows = pairs
    .map((pair) => compare(pair, lossLimit))
    .filter((c): c is Compared => c !== undefined)
    .map((c) => ({
      n: c.n,
      rate: c.common?.rate ?? null,
      ours: c.common?.ours.usPerFwd ?? null,
      janus: c.common?.peer.usPerFwd ?? null,
      cost: c.common ? c.common.ours.usPerFwd / c.common.peer.usPerFwd : null,
      op50: c.common?.ours.p50 ?? null,
      jp50: c.common?.peer.p50 ?? null,
      oursBest: c.oursBest,
      janusBest: c.peerBest,
      throughput: c.peerBest > 0 ? c.oursBest / c.peerBest : null,
    }));
  return { title: 'Ours against Janus, same run', columns, rows };
}

/**
 * The notes: a one-line summary per N, then how Janus was set up and measured. `missing` is
 * the reason Janus did not run, if it did not.
 */
export function peerNotes(
  pairs: PeerPair[],
  lossLimit: number,
  version: string,
  missing?: string,
): string[] {
  if (missing) return [`Janus baseline (c) not measured: ${missing}.`];
  const lines = pairs
    .map((pair) => compare(pair, lossLimit))
    .filter((c): c is Compared => c !== undefined)
    .map((c) => {
      const cost = c.common
        ? `${(c.common.ours.usPerFwd / c.common.peer.usPerFwd).toFixed(2)}× Janus's CPU per forwarded packet at ${c.common.rate.toLocaleString('en-US')}/s (${c.common.ours.usPerFwd.toFixed(1)} vs ${c.common.peer.usPerFwd.toFixed(1)} µs)`
        : 'no rate both forwarded without loss';
      const throughput =
        c.peerBest > 0
          ? `${(c.oursBest / c.peerBest).toFixed(2)}× its max loss-free rate (${c.oursBest.toLocaleString('en-US')} vs ${c.peerBest.toLocaleString('en-US')}/s)`
          : `Janus lost packets at every step (ours ${c.oursBest.toLocaleString('en-US')}/s)`;
      return `N=${c.n}: ${cost}, ${throughput}`;
    });
  return [
    `Ours against Janus in this run: ${lines.length > 0 ? lines.join('; ') : 'no N where both ran'}.`,
    `Janus (c): Debian's janus ${version} in a process of its own, started by the benchmark with a configuration in a temp dir (bench/janus-server.ts): only the streaming plugin and the HTTP transport loaded, one RTP mountpoint (VP8, PT 96, no audio), no STUN/TURN, session timeouts off, otherwise its defaults (full ICE, a thread per viewer handle, debug_level 4, an ECDSA DTLS certificate; with werift it negotiates AEAD_AES_128_GCM SRTP). It offers RTX, abs-send-time, mid and transport-cc; the viewers' answer takes none of them (VP8 with NACK and PLI, no header extensions), as with the other systems. The publisher sends the same packets as plain RTP over dgram to the mountpoint (its streaming plugin takes unencrypted RTP in), so Janus does no SRTP decryption on ingress where ours and naive do; each viewer is a werift PeerConnection with the naive mode's peerConfig, speaking Janus's HTTP API (create, attach, watch, Janus's offer, our answer with start). Janus gathers ICE candidates on non-loopback interfaces only (ice.c skips IFF_LOOPBACK), so it runs in a network namespace of its own that the benchmark creates, joined by a veth pair (Janus on 10.213.0.2, the publisher and viewers on 10.213.0.1): its packets cross a veth pair where the others' cross lo, both in-kernel copies. Its CPU is utime + stime of the whole process (all threads) from /proc/<pid>/stat, as for the others; EL p99 does not apply (–). The ours / Janus CPU ratio is taken at the highest rate both passed without loss.`,
  ];
}
