/**
 * The CPU a node, or a publisher's browser, under test gets when it shares this machine with
 * other browsers.
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
 * A node in production has its host to itself, and so has a publisher its own computer: this
 * gives them the same standing here. The others still get every cycle they leave (a weight,
 * not a reservation).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** The node's session weight: nice -10 is 9,548 against the 1,024 of each browser session. */
export const NODE_AUTOGROUP_NICE = -10;
/**
 * A favoured browser's (a publisher whose encoder a test times): nice -5 is 3,121. With four
 * viewer pages on 2 cores, an unfavoured publisher's page read the node's dynacast request up
 * to 2.2 s late and took 3.5 s more to apply it, and its 1280 px layer started 3-4.5 s after
 * the request instead of under one.
 */
export const FAVOURED_BROWSER_AUTOGROUP_NICE = -5;

let warned = false;

/**
 * Gives `pid` (a process that leads its own session: spawn it `detached`) the autogroup nice
 * NODE_AUTOGROUP_NICE. Without autogroups or without CAP_SYS_NICE it says so once on stderr
 * and leaves the process as it is: the tests still run, with the lag described above.
 */
export function favourNode(pid: number): void {
  setAutogroupNice(pid, NODE_AUTOGROUP_NICE, 'the node');
}

/**
 * Gives the Chromium whose profile is `userDataDir` (its browser process leads its session,
 * as Playwright starts it) the autogroup nice FAVOURED_BROWSER_AUTOGROUP_NICE.
 */
export function favourBrowser(userDataDir: string): void {
  const flag = `--user-data-dir=${userDataDir}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited meanwhile
    }
    // The browser process: the renderers and helpers carry `--type=`.
    if (!args.includes(flag) || args.some((a) => a.startsWith('--type='))) continue;
    setAutogroupNice(Number(entry), FAVOURED_BROWSER_AUTOGROUP_NICE, 'a publisher browser');
    return;
  }
  warn('a publisher browser', new Error(`no browser process with ${flag}`));
}

function setAutogroupNice(pid: number, nice: number, who: string): void {
  const path = `/proc/${pid}/autogroup`;
  try {
    writeFileSync(path, String(nice));
    const now = readFileSync(path, 'utf8');
    if (!now.includes(`nice ${nice}`)) throw new Error(`${path} reads ${now}`);
  } catch (error) {
    warn(who, error as Error);
  }
}

function warn(who: string, error: Error): void {
  if (warned) return;
  warned = true;
  process.stderr.write(
    `note: could not favour the CPU share of ${who} (${error.message}); with browsers on this machine the tests' timing suffers (see test/helpers/node-priority.ts)\n`,
  );
}
