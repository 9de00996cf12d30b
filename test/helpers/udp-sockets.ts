import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Inodes of the UDP sockets (IPv4 and IPv6) in the network namespace of `pid`. */
function udpInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6 in this namespace: nothing to count there
    }
    for (const line of text.split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode) inodes.add(inode);
    }
  }
  return inodes;
}

/**
 * How many UDP sockets process `pid` holds open (werift: one per PeerConnection), read from
 * its file descriptors and the kernel's socket tables.
 */
export function udpSocketCount(pid: number): number {
  const inodes = udpInodes(pid);
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed between the listing and the read
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode && inodes.has(inode)) count++;
  }
  return count;
}
