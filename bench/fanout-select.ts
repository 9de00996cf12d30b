/**
 * The fan-out benchmark's in-process part (forked by bench/fanout.bench.ts, its own process so
 * that it inherits no JIT state; not a benchmark itself): what simulcast layer selection and
 * rewriting cost per forwarded packet, on the exact path a packet takes in the node —
 * `Publication.forward` (parse, strip, one `ForwardedPacket`) to each sink, a real
 * `Subscription` whose `OutgoingStream` selects, maps (RtpMunger, Vp8Munger), copies and hands
 * the packet to its sender.
 *
 * Isolated: the sender. Each stream's werift sender is a stand-in that keeps the buffer and
 * returns at once, so werift's own sendRtp, SRTP and the UDP write (the bulk of the
 * end-to-end µs CPU/fwd pkt, the same in every mode) are not in these figures; what is left
 * is everything of ours on the packet path, metrics included.
 *
 * Modes, each with N sinks:
 *   passthrough  one layer (not simulcast): today's path, no selection, no copy
 *   settled      three layers, each sink on one (spread over the layers) from its first
 *                packet: the layer filter, numbers unchanged (no copy)
 *   rewrite      the same after one switch each: every packet copied and renumbered
 *   switching    three layers, every sink's target changes every SWITCH_EVERY_FRAMES frames
 *                and the stream switches at the target's next keyframe
 */
import { type SimulcastLayer, silentLogger } from '@geosfu/common';
import {
  RTCRtpCodecParameters,
  type RTCRtpSender,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
} from 'werift';
import { BOT_SIMULCAST_LAYERS } from '../packages/client/src/bot/simulcast.js';
import { NodeMetrics } from '../packages/node/src/metrics.js';
import { Publication } from '../packages/node/src/Publication.js';
import { Subscription } from '../packages/node/src/Subscription.js';
import {
  PAYLOAD_SIZE,
  type SelectMode,
  type SelectResult,
  SWITCH_EVERY_FRAMES,
  serve,
} from './fanout-common.js';
import { collectGarbage, median } from './lib.js';

/**
 * Packets per 30 fps frame of each layer, lowest first: ~1200-byte packets at the bot's
 * layer caps (150 k, 500 k, 1.5 Mbit/s) are about 0.6, 2 and 6 per frame.
 */
const PACKETS_PER_FRAME = [1, 2, 5];
/** A keyframe on each layer every this many frames, the layers staggered. */
const KEYFRAME_EVERY_FRAMES = 10;
/** The highest layer, which every sink declares it may need: dynacast pauses nothing. */
const TOP = BOT_SIMULCAST_LAYERS.length - 1;

interface Entry {
  layer: number;
  frameStart: boolean;
  keyframe: boolean;
  /** The frame's index in the cycle. */
  frame: number;
}

/** One cycle of input packets, frame by frame, each frame's layers lowest first. */
function schedule(simulcast: boolean): Entry[] {
  const layers = simulcast ? [0, 1, 2] : [TOP];
  const out: Entry[] = [];
  for (let frame = 0; frame < KEYFRAME_EVERY_FRAMES * SWITCH_EVERY_FRAMES; frame++) {
    for (const layer of layers) {
      const count = PACKETS_PER_FRAME[layer] as number;
      const keyframe = (frame + 3 * layer) % KEYFRAME_EVERY_FRAMES === 0;
      for (let k = 0; k < count; k++) out.push({ layer, frameStart: k === 0, keyframe, frame });
    }
  }
  return out;
}

/** A layer's RTP source: SSRC, numbering and its one packet object (rewritten per packet). */
class LayerSource {
  seq = 1000;
  pictureId = 100;
  tl0 = 10;
  timestamp = 5000;
  readonly packet: RtpPacket;

  constructor(readonly ssrc: number) {
    const payload = Buffer.alloc(PAYLOAD_SIZE);
    payload[0] = 0x90; // X, S
    payload[1] = 0xc0; // I, L
    this.packet = new RtpPacket(
      new RtpHeader({ payloadType: 96, sequenceNumber: this.seq, timestamp: this.timestamp, ssrc }),
      payload,
    );
  }

  /** The next packet of this layer, as the publisher's RTP stack would number it. */
  next(e: Entry): RtpPacket {
    const p = this.packet;
    const payload = p.payload;
    if (e.frameStart) {
      this.pictureId = (this.pictureId + 1) & 0x7fff;
      this.timestamp = (this.timestamp + 3000) >>> 0;
      if (e.keyframe) this.tl0 = (this.tl0 + 1) & 0xff;
    }
    this.seq = (this.seq + 1) & 0xffff;
    payload[0] = e.frameStart ? 0x90 : 0x80;
    payload[2] = 0x80 | (this.pictureId >> 8);
    payload[3] = this.pictureId & 0xff;
    payload[4] = this.tl0;
    // VP8 payload header: P bit clear on a keyframe's first packet.
    payload[5] = e.keyframe && e.frameStart ? 0x00 : 0x01;
    p.header.sequenceNumber = this.seq;
    p.header.timestamp = this.timestamp;
    p.header.marker = false;
    return p;
  }
}

/** The last buffer a stand-in sender got: kept where the optimizer cannot prove it dead. */
export let lastSent: Buffer | undefined;

/** werift's sender as the stream uses it, sending nothing: see the file comment. */
function standInSender(): { sender: RTCRtpSender; sent: () => number } {
  let sent = 0;
  const done = { catch: () => done };
  const subscribable = { subscribe: () => ({ unSubscribe: () => {} }) };
  const sender = {
    kind: 'video',
    codec: {},
    dtlsTransport: { state: 'connected' },
    onPictureLossIndication: subscribable,
    onGenericNack: subscribable,
    sendRtp(buffer: Buffer) {
      sent++;
      lastSent = buffer;
      return done;
    },
  };
  return { sender: sender as unknown as RTCRtpSender, sent: () => sent };
}

function metrics(): NodeMetrics {
  return new NodeMetrics(
    { nodeId: 'bench', region: 'bench', version: 'bench' },
    {
      rooms: () => 1,
      participants: () => 0,
      handshakes: () => ({ active: 0, waiting: 0 }),
      publishedTracks: () => 1,
      subscriptions: () => 0,
      relayLinks: () => [],
    },
  );
}

const nodeMetrics = metrics();

async function run(args: {
  mode: SelectMode;
  n: number;
  rounds: number;
  roundMs: number;
  warmupMs: number;
}): Promise<SelectResult> {
  const { mode, n } = args;
  const simulcast = mode !== 'passthrough';
  const layers: SimulcastLayer[] = [...BOT_SIMULCAST_LAYERS];
  const publication = new Publication({
    kind: 'video',
    source: 'camera',
    participantSid: 'PA_bench',
    identity: 'bench',
    codec: new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90_000 }),
    origin: { path: 'client', requestKeyframe: () => {} },
    metrics: nodeMetrics,
    logger: silentLogger(),
    ...(simulcast ? { layers } : {}),
  });
  const senders: (() => number)[] = [];
  let switches = 0;
  const subs = Array.from({ length: n }, () => {
    const { sender, sent } = standInSender();
    senders.push(sent);
    return new Subscription({
      publication,
      transceiver: { sender, mid: '0' } as unknown as RTCRtpTransceiver,
      metrics: nodeMetrics,
      logger: silentLogger(),
      onClose: () => {},
      onLayer: () => {
        switches++;
      },
    });
  });
  const sources = (simulcast ? [0, 1, 2] : [0]).map((l) => new LayerSource(0x1000 + l));
  const entries = schedule(simulcast);
  // Sink i's layer, the top one first: N=1 gets the top layer, N=10 4/3/3 over f/h/q.
  const home = (i: number) => (simulcast ? TOP - (i % layers.length) : 0);
  const forward = (e: Entry) => {
    const source = simulcast ? (sources[e.layer] as LayerSource) : (sources[0] as LayerSource);
    publication.forward(source.next(e), simulcast ? e.layer : 0);
  };
  const cycle = (times: number) => {
    for (let t = 0; t < times; t++) for (const e of entries) forward(e);
  };
  // Set-up (untimed): every sink on its layer, sending; rewrite: after a switch from another.
  const now = performance.now();
  for (const [i, s] of subs.entries()) {
    s.retarget(mode === 'rewrite' ? (home(i) + 1) % layers.length : home(i), TOP, now);
  }
  cycle(1);
  if (mode === 'rewrite') {
    for (const [i, s] of subs.entries()) s.retarget(home(i), TOP, now);
    cycle(1);
  }
  for (const [i, s] of subs.entries()) {
    if (s.currentLayer !== home(i)) {
      throw new Error(`${mode} N=${n}: sink ${i} on layer ${s.currentLayer}, not ${home(i)}`);
    }
  }
  const sentTotal = () => senders.reduce((a, f) => a + f(), 0);
  const sent0 = sentTotal();
  const switches0 = switches;
  let ops = 0;
  const switching = mode === 'switching';
  const m = await cpuRounds((i) => {
    const e = entries[i % entries.length] as Entry;
    if (switching && e.frameStart && e.layer === 0) {
      // Each sink in its turn, staggered over the frames: moves its target to another layer.
      const t = performance.now();
      for (let k = 0; k < n; k++) {
        if ((e.frame + k) % SWITCH_EVERY_FRAMES !== 0) continue;
        const s = subs[k] as Subscription;
        s.retarget((s.targetLayer + 1 + (k % 2)) % layers.length, TOP, t);
      }
    }
    forward(e);
    ops++;
  }, args);
  const sent = sentTotal() - sent0;
  for (const s of subs) s.close();
  publication.close();
  return {
    mode,
    n,
    usPerOp: m.usPerOp,
    spread: m.spread,
    sentPerInput: sent / ops,
    switchesPerK: (1000 * (switches - switches0)) / Math.max(1, sent),
  };
}

const BATCH = 256;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `op` for `warmupMs` untimed, then `rounds` rounds of `roundMs` each; per round the
 * process's CPU time (user + system, process.cpuUsage) per operation: what the end-to-end
 * figure measures too, and unlike wall time not inflated when other processes take the core.
 */
async function cpuRounds(
  op: (i: number) => void,
  o: { rounds: number; roundMs: number; warmupMs: number },
): Promise<{ usPerOp: number; spread: number }> {
  let i = 0;
  const warmEnd = performance.now() + o.warmupMs;
  while (performance.now() < warmEnd) for (let k = 0; k < BATCH; k++) op(i++);
  collectGarbage();
  const rounds: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    // The event loop gets a turn between rounds (the publication's timers, keyframe requests).
    await yieldToLoop();
    let ops = 0;
    const c0 = process.cpuUsage();
    const end = performance.now() + o.roundMs;
    while (performance.now() < end) {
      for (let k = 0; k < BATCH; k++) op(i++);
      ops += BATCH;
    }
    const c = process.cpuUsage(c0);
    rounds.push((c.user + c.system) / ops);
  }
  const usPerOp = median(rounds);
  return { usPerOp, spread: (Math.max(...rounds) - Math.min(...rounds)) / usPerOp };
}

serve({ run });
