/**
 * A UDP probe for measuring the emulated links themselves: the sender stamps each datagram
 * with a sequence number and the monotonic clock (CLOCK_MONOTONIC is one clock for every
 * namespace of a machine), the receiver reports one-way delays, loss and reordering.
 *
 *   probe recv <port> <idleMs>                    prints one JSON line when idle for idleMs
 *   probe send <host> <port> <rate/s> <count> <bytes>   prints one JSON line when done
 */
import dgram from 'node:dgram';

const HEADER = 12;

export interface ProbeReceipt {
  type: 'recv';
  received: number;
  /** Sequence numbers that arrived after a higher one. */
  reordered: number;
  duplicates: number;
  highestSeq: number;
  bytes: number;
  /** One-way delays in ms, in arrival order. */
  delaysMs: number[];
  /** First to last arrival, ms. */
  spanMs: number;
}

export interface ProbeSent {
  type: 'sent';
  sent: number;
  durationMs: number;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function receive(port: number, idleMs: number): void {
  const socket = dgram.createSocket('udp4');
  const seen = new Set<number>();
  const delays: number[] = [];
  let highest = -1;
  let reordered = 0;
  let duplicates = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let idle: NodeJS.Timeout | undefined;
  const finish = () => {
    const receipt: ProbeReceipt = {
      type: 'recv',
      received: seen.size,
      reordered,
      duplicates,
      highestSeq: highest,
      bytes,
      delaysMs: delays,
      spanMs: last - first,
    };
    process.stdout.write(`${JSON.stringify(receipt)}\n`);
    socket.close();
  };
  socket.on('message', (msg) => {
    const t = nowMs();
    if (msg.length < HEADER) return;
    const seq = msg.readUInt32BE(0);
    const sent = msg.readDoubleBE(4);
    if (seen.has(seq)) {
      duplicates++;
      return;
    }
    if (seen.size === 0) first = t;
    last = t;
    seen.add(seq);
    if (seq < highest) reordered++;
    else highest = seq;
    bytes += msg.length;
    delays.push(t - sent);
    clearTimeout(idle);
    idle = setTimeout(finish, idleMs);
  });
  socket.bind(port, () => {
    socket.setRecvBufferSize(8 * 1024 * 1024);
    process.stdout.write(`${JSON.stringify({ type: 'listening' })}\n`);
  });
  // Nothing at all: report after a generous wait rather than hang.
  idle = setTimeout(finish, Math.max(idleMs, 10_000));
}

function send(host: string, port: number, rate: number, count: number, size: number): void {
  const socket = dgram.createSocket('udp4');
  const payload = Buffer.alloc(Math.max(HEADER, size));
  const start = nowMs();
  let sent = 0;
  // Every millisecond tick sends what is due, so rates above 1000/s work with 1 ms timers.
  const tick = () => {
    const due = Math.min(count, Math.floor(((nowMs() - start) * rate) / 1000) + 1);
    while (sent < due) {
      const packet = Buffer.from(payload);
      packet.writeUInt32BE(sent, 0);
      packet.writeDoubleBE(nowMs(), 4);
      socket.send(packet, port, host);
      sent++;
    }
    if (sent < count) setTimeout(tick, 1);
    else {
      const result: ProbeSent = { type: 'sent', sent, durationMs: nowMs() - start };
      process.stdout.write(`${JSON.stringify(result)}\n`);
      setTimeout(() => socket.close(), 100);
    }
  };
  tick();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'recv') receive(Number(args[0]), Number(args[1] ?? 1000));
else if (mode === 'send') {
  send(String(args[0]), Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4] ?? 1000));
} else {
  process.stderr.write(
    'usage: probe recv <port> <idleMs> | probe send <host> <port> <rate> <count> <bytes>\n',
  );
  process.exit(2);
}
