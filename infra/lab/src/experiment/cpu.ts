/**
 * CPU accounting from /proc/stat: how much of an interval this VM was busy, idle, or had its
 * time stolen by the hypervisor. Steal stalls every process at once (10-300 ms here), which
 * shows up as latency spikes that are not the emulated network's.
 */
import { readFileSync } from 'node:fs';

export interface CpuTimes {
  busy: number;
  idle: number;
  steal: number;
  total: number;
}

/** Aggregate jiffies of all CPUs; undefined where /proc/stat does not exist. */
export function readCpuTimes(path = '/proc/stat'): CpuTimes | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return parseCpuLine(text.split('\n', 1)[0] ?? '');
}

export function parseCpuLine(line: string): CpuTimes | undefined {
  const f = line.trim().split(/\s+/);
  if (f[0] !== 'cpu') return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f.slice(1, 9).map(Number);
  const n = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : 0);
  const busy = n(user) + n(nice) + n(system) + n(irq) + n(softirq);
  const idleAll = n(idle) + n(iowait);
  return { busy, idle: idleAll, steal: n(steal), total: busy + idleAll + n(steal) };
}

/** Steal and busy shares between two readings, percent of all CPUs. */
export function cpuShares(
  from: CpuTimes,
  to: CpuTimes,
): { stealPercent: number; busyPercent: number } {
  const total = to.total - from.total;
  if (total <= 0) return { stealPercent: 0, busyPercent: 0 };
  return {
    stealPercent: (100 * (to.steal - from.steal)) / total,
    busyPercent: (100 * (to.busy - from.busy)) / total,
  };
}
