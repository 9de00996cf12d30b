/** What a process holds, read from /proc: for leak tests that count a node's sockets. */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Socket inodes of one /proc/<pid>/net table (udp, udp6, tcp, ...). */
function inodes(pid: number, table: string): Set<string> {
  const out = new Set<string>();
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
  } catch {
    return out; // no IPv6 in this kernel: no udp6 table
  }
  for (const line of text.split('\n').slice(1)) {
    const inode = line.trim().split(/\s+/)[9];
    if (inode && inode !== '0') out.add(inode);
  }
  return out;
}

/**
 * How many UDP sockets (IPv4 and IPv6) the process `pid` has open: its descriptors that are
 * sockets, matched by inode against the UDP tables of its network namespace.
 */
export function udpSocketCount(pid: number): number {
  const udp = new Set([...inodes(pid, 'udp'), ...inodes(pid, 'udp6')]);
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed between readdir and readlink
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode && udp.has(inode)) count++;
  }
  return count;
}

/** Local ports of the UDP sockets (IPv4 and IPv6) that the process `pid` has open. */
export function udpPorts(pid: number): number[] {
  const ports: number[] = [];
  const mine = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) mine.add(inode);
    } catch {
      // closed between readdir and readlink
    }
  }
  for (const table of ['udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6 in this kernel: no udp6 table
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const port = cols[1]?.split(':')[1];
      if (port && cols[9] && mine.has(cols[9])) ports.push(Number.parseInt(port, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}
