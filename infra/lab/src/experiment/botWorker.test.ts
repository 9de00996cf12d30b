/**
 * The experiment's bot worker against a real SFU node on loopback: two workers publish to each
 * other and report joins, clock, samples and final stats on stdout as JSON lines.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NodeProcess, startNode } from '../../../../test/helpers/node-process.js';
import type { BotWorkerConfigInput, BotWorkerLine } from './botWorker.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const WORKER = fileURLToPath(new URL('./botWorker.ts', import.meta.url));
const VIDEO_BITRATE = 1_500_000;

type Line<T extends BotWorkerLine['type']> = Extract<BotWorkerLine, { type: T }>;

class WorkerProcess {
  readonly child: ChildProcess;
  readonly lines: BotWorkerLine[] = [];
  /** stdout lines that are not JSON objects with a type (there must be none). */
  readonly stray: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #checks = new Set<() => void>();
  #exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    config: BotWorkerConfigInput | string,
  ) {
    const arg = typeof config === 'string' ? config : JSON.stringify(config);
    this.child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', WORKER, arg], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as BotWorkerLine;
        if (typeof parsed?.type !== 'string') throw new Error('no type');
        this.lines.push(parsed);
      } catch {
        this.stray.push(line);
      }
      this.#check();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        this.#exitCode = code;
        resolve(code);
        this.#check();
      });
    });
  }

  of<T extends BotWorkerLine['type']>(type: T): Line<T>[] {
    return this.lines.filter((l): l is Line<T> => l.type === type);
  }

  /** Resolves once `probe` returns a value; rejects on timeout or when the worker exits. */
  waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 45_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const done = (error?: Error, value?: T) => {
        clearTimeout(timer);
        this.#checks.delete(check);
        if (error) reject(new Error(`${this.name}: ${error.message}\n${this.describe()}`));
        else resolve(value as T);
      };
      const check = () => {
        const value = probe();
        if (value !== undefined) done(undefined, value);
        else if (this.#exitCode !== undefined) {
          done(new Error(`exited with ${this.#exitCode} before ${what}`));
        }
      };
      this.#checks.add(check);
      check();
    });
  }

  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  describe(): string {
    const last = this.lines.slice(-4).map((l) => JSON.stringify(l));
    return `last lines:\n${last.join('\n')}\nstderr:\n${this.stderr.slice(-3000)}`;
  }

  #check(): void {
    for (const check of [...this.#checks]) check();
  }
}

const workers: WorkerProcess[] = [];

function startWorker(name: string, config: BotWorkerConfigInput | string): WorkerProcess {
  const w = new WorkerProcess(name, config);
  workers.push(w);
  return w;
}

after(() => {
  for (const w of workers) w.kill();
});

describe('botWorker against a node', { timeout: 120_000 }, () => {
  let node: NodeProcess;

  before(async () => {
    node = await startNode();
  });

  after(async () => {
    for (const w of workers) w.kill();
    await node?.stop();
  });

  it('joins, measures the clock, samples the peer and stops on "stop"', async () => {
    const room = `lab-worker-${process.pid}-${Date.now()}`;
    const config = (identity: string, peerIdentity: string): BotWorkerConfigInput => ({
      url: node.url,
      route: false,
      room,
      identity,
      peerIdentity,
      hostAddresses: ['127.0.0.1'],
      videoBitrate: VIDEO_BITRATE,
      sampleIntervalMs: 1000,
    });
    const eu = startWorker('eu', config('eu', 'vn'));
    const vn = startWorker('vn', config('vn', 'eu'));

    const good = (w: WorkerProcess) =>
      w.waitFor('two samples with video and a clock line', () => {
        const withVideo = w
          .of('sample')
          .filter((s) => s.streams.some((x) => x.kind === 'video' && x.packets > 0));
        const clock = w.of('clock')[0];
        return withVideo.length >= 2 && clock ? { samples: withVideo, clock } : undefined;
      });
    const [euSeen, vnSeen] = await Promise.all([good(eu), good(vn)]);

    for (const [w, seen] of [
      [eu, euSeen],
      [vn, vnSeen],
    ] as const) {
      const joined = w.of('joined');
      assert.equal(joined.length, 1, w.describe());
      const j = joined[0] as Line<'joined'>;
      assert.equal(j.node, node.url);
      assert.equal(j.nodeId, node.nodeId);
      assert.ok(j.joinMs > 0 && j.joinMs < 20_000, `joinMs ${j.joinMs}`);
      assert.ok(j.wsJoinMs >= 0 && j.wsJoinMs <= j.joinMs && j.joinMs <= j.connectMs);
      const kinds = w
        .of('firstMedia')
        .map((f) => f.kind)
        .sort();
      assert.deepEqual(kinds, ['audio', 'video'], w.describe());

      assert.ok(Math.abs(seen.clock.offsetMs) < 50, `clock offset ${seen.clock.offsetMs} ms`);
      assert.ok(seen.clock.rttMs >= 0 && seen.clock.rttMs < 1000);

      const later = seen.samples[1] as Line<'sample'>;
      const video = later.streams.find((s) => s.kind === 'video');
      assert.ok(video);
      const configuredKbps = VIDEO_BITRATE / 1000;
      assert.ok(
        video.bitrateKbps >= configuredKbps * 0.5 && video.bitrateKbps <= configuredKbps * 2,
        `${w.name} video ${video.bitrateKbps} kbit/s over ${video.intervalMs} ms`,
      );
      assert.ok(video.intervalMs > 500 && video.intervalMs < 3000, `interval ${video.intervalMs}`);
      assert.ok(
        video.latencyMs.mean !== null && video.latencyMs.mean < 100,
        JSON.stringify(video.latencyMs),
      );
      assert.ok(video.latencySamples > 0 && video.latencySamples <= video.packets);
      // Loopback: hardly any loss, but a busy machine may drop a UDP packet.
      assert.ok(video.lost <= Math.ceil(video.expected * 0.01), `lost ${video.lost}`);
      const audio = later.streams.find((s) => s.kind === 'audio');
      assert.ok(audio && audio.packets > 0, 'audio in the later sample');
      console.log(
        `${w.name}: video ${video.bitrateKbps} kbit/s, ${video.packets} packets in ` +
          `${video.intervalMs} ms, latency mean ${video.latencyMs.mean} p95 ` +
          `${video.latencyMs.p95} max ${video.latencyMs.max} ms, jitter ${video.jitterMs} ms; ` +
          `audio ${audio.bitrateKbps} kbit/s; clock offset ${seen.clock.offsetMs} ms ` +
          `rtt ${seen.clock.rttMs} ms; joinMs ${j.joinMs}`,
      );
    }

    eu.send('stop');
    vn.send('stop');
    const [euCode, vnCode] = await Promise.all([eu.exited, vn.exited]);
    for (const [w, code] of [
      [eu, euCode],
      [vn, vnCode],
    ] as const) {
      assert.equal(code, 0, w.describe());
      assert.deepEqual(w.stray, [], 'stdout carries JSON lines only');
      assert.equal(w.of('error').length, 0, w.describe());
      const last = w.lines.at(-1);
      assert.equal(last?.type, 'final', w.describe());
      const final = last as Line<'final'>;
      const peer = w === eu ? 'vn' : 'eu';
      const received = final.stats.received.find(
        (r) => r.participant === peer && r.kind === 'video',
      );
      assert.ok(received && received.packets > 0);
      assert.deepEqual(final.stats.sent.map((s) => s.kind).sort(), ['audio', 'video']);
    }
  });

  it('exits 2 with a clear message on a bad config', async () => {
    /** A config that is valid but for `extra`. */
    const configWith = (extra: Record<string, unknown>) =>
      JSON.stringify({
        url: node.url,
        route: false,
        room: 'r',
        identity: 'a',
        peerIdentity: 'b',
        ...extra,
      });
    const cases: [string, RegExp][] = [
      ['{"url": 5}', /bad config:[\s\S]*url[\s\S]*room/],
      ['not json', /bad config: the config is not JSON/],
      [configWith({ region: 'ams' }), /bad config:[\s\S]*pinning a region needs route: true/],
      [configWith({ bitrate: 1 }), /bad config:[\s\S]*bitrate/],
    ];
    for (const [arg, message] of cases) {
      const w = startWorker('bad', arg);
      const code = await w.exited;
      assert.equal(code, 2, w.describe());
      assert.match(w.stderr, message);
      assert.deepEqual(w.lines, []);
      assert.deepEqual(w.stray, []);
    }
  });
});
