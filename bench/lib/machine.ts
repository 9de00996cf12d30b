/** The machine a benchmark ran on, as its result records it and docs/BENCHMARKS.md shows it. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  /** CPU model, from /proc/cpuinfo where there is one. */
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  /** Distribution, kernel and architecture. */
  os: string;
}

/** Cores, CPU model, memory, Node version and OS of this machine. */
export function describeMachine(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    // os.cpus() reports the same on Linux, but a VM without per-core entries reports none.
    const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (model?.[1]) cpu = model[1].trim();
  } catch {
    // Not Linux: os.cpus() already gave the model.
  }
  let distribution = `${os.type()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty?.[1]) distribution = pretty[1];
  } catch {
    // No os-release (macOS, Windows): the kernel type stands in for the distribution.
  }
  return {
    cpu,
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${distribution}, ${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export function machineLine(m: Machine): string {
  return `${m.cores} cores, ${m.cpu}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}`;
}
