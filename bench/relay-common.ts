/**
 * What the relay benchmark's runner (relay.bench.ts) and its result (relay-result.ts) share:
 * the run's settings and targets, and the timings recorded per join.
 */
import { KEYFRAME_REQUEST_GAP_MS } from '@geosfu/node';

export const NAME = 'relay';
/** Timed joins per case; each case runs one untimed (cold) join before them. */
// Issue 8 asks for p50/p95 over 20 joins.
export const ROUNDS = 20;
/** "First keyframe after join p50 < 200 ms" (the project's issue). */
export const TARGET_LOCAL_MS = 200;
/** "Relay set-up p50 < 500 ms" (the project's issue). */
export const TARGET_RELAY_MS = 500;
/**
 * A node sends a publisher at most one PLI per KEYFRAME_REQUEST_GAP_MS and holds a later
 * request back until the gap is over. A join that follows the previous join's PLI within
 * the gap therefore waits for the throttle, not for itself: the isolated cases start each
 * join only once the publisher's last PLI is this long past.
 */
export const QUIET_MS = KEYFRAME_REQUEST_GAP_MS + 100;
/** A join without a keyframe by then counts as failed (the bots never ask for one themselves). */
export const KEYFRAME_TIMEOUT_MS = 5_000;
export const CLEANUP_TIMEOUT_MS = 15_000;
export const POLL_MS = 25;
export const HOST = ['127.0.0.1'];
/** As test/integration/relay.test.ts: a short registry TTL and heartbeat. */
export const TTL_MS = 3_000;
export const HEARTBEAT_MS = 750;
export const PUBLISHER = 'pub';
export const DEBUG = Boolean(process.env.RELAY_BENCH_DEBUG);

/** A duration for the notes and the debug lines: "123 ms", or "n/a" when there is none. */
export const ms0 = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : 'n/a');

export type CaseKey = 'local' | 'burst' | 'cluster' | 'relay';

export interface Round {
  /** 0 is the cold round, not in the percentiles. */
  index: number;
  /** nowMs() just before Bot.connect. */
  startedAt: number;
  /** Bot.connect resolved: dev token, websocket, join answered. */
  joinedMs: number;
  firstPacketMs: number;
  /** The last PLI the publisher received before the keyframe. */
  pliMs: number;
  firstKeyframeMs: number;
  /** From close() to the node(s) back where the round started. */
  cleanupMs: number;
  /** Every PLI the publisher received from the start to the keyframe, ms after the start. */
  plisMs: number[];
  /** How long before the start the publisher had received its previous PLI. */
  sinceLastPliMs: number;
  /** Relayed joins: when the relay link's PeerConnection connected (ams's clock and measure). */
  linkUpMs: number;
  /** The end of the round's window: its keyframe, or when it gave up. */
  windowMs: number;
  /** Packets of the publisher's video received in the window. */
  videoPackets: number;
  error?: string;
}

export interface Case {
  key: CaseKey;
  id: string;
  label: string;
  rounds: Round[];
  /** Server-side join → first media packet out (sfu_join_duration_seconds), mean ms. */
  nodeJoinMs: number;
}
