/**
 * Counts and drops, in the kernel (nftables), the RTP datagrams sent to a set of local UDP
 * ports: subscribers of a benchmark whose packets must be counted but whose receive path
 * must cost no CPU. A werift subscriber decrypts and parses every packet, about what the node
 * spends to forward it; on a 2-core host the subscribers would take the CPU the measured
 * node needs, and their socket buffers overflow first (bench/cores.bench.ts saw it: nodes at
 * 35-68 % of a core while thousands of datagrams were dropped at the bots' full buffers).
 *
 * Only RTP is dropped (version 2, payload type outside RTCP's 200-207): STUN, DTLS and RTCP
 * still reach the bot, so its ICE, its receiver reports and the node's liveness check go on.
 * Needs root and `nft` (Debian's nftables; .ci/run installs it). One table per sink, named
 * after it; `close` deletes it, and `open` deletes a leftover of an earlier crashed run.
 */
import { execFileSync } from 'node:child_process';

const FAMILY = 'inet';

export class KernelSink {
  readonly #table: string;
  #open = true;

  private constructor(table: string) {
    this.#table = table;
  }

  /** Starts counting and dropping RTP to `ports` on this host. */
  static open(name: string, ports: number[]): KernelSink {
    if (!/^[a-z][a-z0-9_]{0,30}$/.test(name)) throw new Error(`bad sink name "${name}"`);
    if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65_535)) {
      throw new Error(`bad sink ports ${JSON.stringify(ports)}`);
    }
    const table = `geosfu_${name}`;
    nftQuiet(['delete', 'table', FAMILY, table]);
    const script = [
      `table ${FAMILY} ${table} {`,
      '  counter rtp { }',
      `  set ports { type inet_service; elements = { ${ports.join(', ')} } }`,
      '  chain input {',
      '    type filter hook input priority -10; policy accept;',
      // First payload byte: version 2; second: marker + payload type, RTCP is 200-207.
      '    udp dport @ports @th,64,8 & 0xc0 == 0x80 @th,72,8 & 0x7f != 0x48-0x4f counter name rtp drop',
      '  }',
      '}',
    ].join('\n');
    execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
    return new KernelSink(table);
  }

  /** RTP datagrams counted (and dropped) so far. */
  packets(): number {
    if (!this.#open) throw new Error(`sink ${this.#table} is closed`);
    const out = execFileSync('nft', ['-j', 'list', 'counter', FAMILY, this.#table, 'rtp'], {
      encoding: 'utf8',
    });
    const parsed = JSON.parse(out) as { nftables: { counter?: { packets: number } }[] };
    const counter = parsed.nftables.find((e) => e.counter !== undefined)?.counter;
    if (!counter) throw new Error(`no counter in ${this.#table}`);
    return counter.packets;
  }

  /** Deletes the table; idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    nftQuiet(['delete', 'table', FAMILY, this.#table]);
  }
}

/** Runs nft, ignoring failure (deleting a table that is not there). */
function nftQuiet(args: string[]): void {
  try {
    execFileSync('nft', args, { stdio: 'ignore' });
  } catch {
    // Nothing to delete.
  }
}
