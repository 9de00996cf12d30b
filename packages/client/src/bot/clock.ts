/**
 * Clock offset between a bot and its node from `ping`/`pong` exchanges over the signalling
 * websocket, NTP style. The node stamps a pong with one `serverTs` (receive and send time are
 * the same moment for it), so with the client's send time t0 and receive time t3:
 *   offset = serverTs - (t0 + t3) / 2,   rtt = t3 - t0,
 * exact when the two directions take equally long; the error is at most rtt / 2. Of several
 * exchanges the one with the smallest round trip has the least queueing in it and wins.
 */

/** One ping/pong exchange: client times on the bot's clock, `serverTs` on the node's. */
export interface ClockSample {
  /** When the ping left the client (epoch ms). */
  t0: number;
  /** The node's clock when it answered (epoch ms). */
  serverTs: number;
  /** When the pong arrived at the client (epoch ms). */
  t3: number;
}

export interface ClockEstimate {
  /** Node clock minus client clock, ms: client time + offsetMs = node time. */
  offsetMs: number;
  /** Round trip of the sample the offset comes from, ms. */
  rttMs: number;
}

/** The offset from the sample with the smallest round trip; undefined without usable samples. */
export function estimateClockOffset(samples: readonly ClockSample[]): ClockEstimate | undefined {
  let best: ClockSample | undefined;
  for (const s of samples) {
    if (![s.t0, s.serverTs, s.t3].every(Number.isFinite) || s.t3 < s.t0) continue;
    if (best === undefined || s.t3 - s.t0 < best.t3 - best.t0) best = s;
  }
  if (best === undefined) return undefined;
  return { offsetMs: best.serverTs - (best.t0 + best.t3) / 2, rttMs: best.t3 - best.t0 };
}

/**
 * A `ping` timestamp that the signalling client's keep-alive pings (integer `Date.now()`) can
 * never carry, so that a pong is matched to its ping by `ts` alone.
 */
export function clockPingTs(t0: number): number {
  return Number.isInteger(t0) ? t0 + 0.001 : t0;
}
