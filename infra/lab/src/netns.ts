/**
 * Thin wrappers over iproute2 for the lab: run `ip` commands, list and delete namespaces, kill
 * what runs inside them. Everything the lab creates lives in namespaces named `gsl<id>-<host>`
 * (plus veths whose root end dies with them), so tearing a lab down is: kill the processes in
 * its namespaces, delete the namespaces.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const LAB_PREFIX = 'gsl';
const LAB_NS = /^gsl(\d+)-([a-z-]+)$/;

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command}: ${stderr.trim() || 'failed'}`);
  }
}

/** Runs a command, resolving with its stdout; rejects with its stderr. */
export async function sh(file: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(file, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') {
      throw new CommandError(file, `${file} not found (install iproute2 and ethtool)`);
    }
    throw new CommandError(`${file} ${args.join(' ')}`, e.stderr ?? e.message);
  }
}

export const ip = (...args: string[]) => sh('ip', args);
/** Runs `file args` inside namespace `ns`. */
export const nsExec = (ns: string, file: string, ...args: string[]) =>
  sh('ip', ['netns', 'exec', ns, file, ...args]);

export async function listNamespaces(): Promise<string[]> {
  const out = await ip('netns', 'list');
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Lab ids that have at least one namespace or root-namespace veth left. */
export async function listLabs(): Promise<number[]> {
  const ids = new Set<number>();
  for (const ns of await listNamespaces()) {
    const m = LAB_NS.exec(ns);
    if (m?.[1]) ids.add(Number(m[1]));
  }
  const links = await ip('-o', 'link', 'show');
  for (const m of links.matchAll(/^\d+: gsl(\d+)m\d+[@:]/gm)) ids.add(Number(m[1]));
  return [...ids].sort((a, b) => a - b);
}

export async function namespacePids(ns: string): Promise<number[]> {
  try {
    const out = await ip('netns', 'pids', ns);
    return out
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/** Root-namespace interfaces of lab `id` (management veth ends `gsl<id>m<i>`). */
export async function rootLinks(id: number): Promise<string[]> {
  const out = await ip('-o', 'link', 'show');
  const names: string[] = [];
  for (const line of out.split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name?.startsWith(`${LAB_PREFIX}${id}m`)) names.push(name);
  }
  return names;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends every process of the lab's namespaces (SIGTERM, SIGKILL after `graceMs`) and deletes
 * the namespaces. Safe to call for a lab that is half built or already gone.
 */
export async function destroyLab(id: number, graceMs = 2_000): Promise<string[]> {
  const namespaces = (await listNamespaces()).filter((ns) => ns.startsWith(`${LAB_PREFIX}${id}-`));
  const pids = new Set<number>();
  for (const ns of namespaces) for (const pid of await namespacePids(ns)) pids.add(pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while ([...pids].some(alive) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const pid of pids) {
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  // Delete the root ends of the management veths explicitly: a namespace whose name is gone
  // lives on in the kernel while sockets in TIME_WAIT hold it (up to a minute), and so would
  // its veth, blocking the next lab with this id.
  for (const link of await rootLinks(id)) {
    try {
      await ip('link', 'del', link);
    } catch {
      // gone with its namespace meanwhile
    }
  }
  for (const ns of namespaces) {
    try {
      await ip('netns', 'del', ns);
    } catch (error) {
      // A namespace with a process still in it can be deleted (it lingers until the process
      // ends); one that is already gone is fine.
      if (!String((error as Error).message).includes('No such file')) throw error;
    }
  }
  return namespaces;
}
