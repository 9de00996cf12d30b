/**
 * The CPU a node under test gets when it shares this machine with browsers.
 *
 * Linux's autogroup scheduling (`kernel.sched_autogroup_enabled`, on in Debian) shares the CPU
 * between sessions first, then between the processes of a session. Playwright starts each
 * Chromium in a session of its own, so three browser pages made three equal shares against
 * one share for the test runner and every node it started. On 2 cores the node's event loop
 * then lagged 50-400 ms (p99 per second), it stamped the publishers' packet arrivals for its
 * transport-cc feedback that late, and Chrome read the lag as congestion: its publisher
 * estimate fell from 3 Mbit/s to 200-400 kbit/s and its camera sent only the lowest layer.
 * With the node in its own session at autogroup nice -10 the loop lagged 15-40 ms and Chrome's
 * estimate held 3 Mbit/s (docs/ARCHITECTURE.md, "Testing on a shared host").
 *
 * A node in production has its host to itself; this gives it the same standing here. The
 * browsers still get every cycle the node leaves (a weight, not a reservation).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** The node's session weight: nice -10 is 9,548 against the 1,024 of each browser session. */
export const NODE_AUTOGROUP_NICE = -10;

let warned = false;

/**
 * Gives `pid` (a process that leads its own session: spawn it `detached`) the autogroup nice
 * NODE_AUTOGROUP_NICE. Without autogroups or without CAP_SYS_NICE it says so once on stderr
 * and leaves the process as it is: the tests still run, with the lag described above.
 */
export function favourNode(pid: number): void {
  const path = `/proc/${pid}/autogroup`;
  try {
    writeFileSync(path, String(NODE_AUTOGROUP_NICE));
    const now = readFileSync(path, 'utf8');
    if (!now.includes(`nice ${NODE_AUTOGROUP_NICE}`)) throw new Error(`${path} reads ${now}`);
  } catch (error) {
    if (warned) return;
    warned = true;
    process.stderr.write(
      `note: could not favour the node's CPU share (${(error as Error).message}); with browsers on this machine its event loop may lag and publishers' estimates fall\n`,
    );
  }
}
