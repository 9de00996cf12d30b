/**
 * A Janus process for the fan-out benchmark (bench/fanout.bench.ts): Debian's `janus` with a
 * configuration of its own in a temp dir, loading the streaming plugin and the HTTP transport
 * and nothing else, one RTP mountpoint (VP8, payload type 96, no audio) that takes plain RTP
 * and serves it to WebRTC viewers.
 *
 * Janus 1.1.2 never gathers ICE candidates on a loopback interface (ice.c
 * janus_ice_setup_local skips IFF_LOOPBACK), and load here targets only loopback or
 * addresses inside a network namespace the benchmark created. So Janus runs in a namespace of
 * its own (`ip netns exec`), joined to this one by a veth pair: Janus on 10.213.0.2, the
 * benchmark's publisher and viewers on 10.213.0.1. Needs root, like the WAN lab.
 *
 * What it leaves behind: nothing. stop() ends the process (SIGTERM, SIGKILL after 5 s),
 * deletes the namespace (and with it the veth pair) and removes the temp dir; if the
 * benchmark dies first, an exit hook does all three.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { onExit } from '../test/helpers/exit.js';
import { JANUS_STREAMING, JanusApiError, JanusSession, janusServerInfo } from './janus-session.js';

export const JANUS_BIN = '/usr/bin/janus';
/** Debian's multiarch directory of Janus's plugins and transports. */
const JANUS_LIB = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/janus`;
const STREAMING_SO = join(JANUS_LIB, 'plugins', 'libjanus_streaming.so');
const HTTP_SO = join(JANUS_LIB, 'transports', 'libjanus_http.so');
export const JANUS_MISSING = `janus not installed: apt-get install janus (looked for ${JANUS_BIN}, ${STREAMING_SO}, ${HTTP_SO})`;
/**
 * The viewers' ICE/RTP ports: below Linux's ephemeral range (32768-60999), so no socket the
 * kernel numbers for the clients lands in it; libnice skips a port in use.
 */
const RTP_PORT_RANGE = '20000-20999';
/** The one mountpoint. */
const MOUNTPOINT_ID = 1;
/** janus.jcfg debug_level: 4 is Janus's default (info); nothing is logged per packet. */
const DEBUG_LEVEL = 4;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** Whether Debian's janus is installed: the binary, its streaming plugin and HTTP transport. */
export function janusInstalled(): boolean {
  return [JANUS_BIN, STREAMING_SO, HTTP_SO].every((path) => existsSync(path));
}

/** The veth pair's two ends: this namespace's (the clients') and Janus's. */
const NET = { clients: '10.213.0.1', janus: '10.213.0.2', prefixLength: 30 };
/** In Janus's own namespace every port is free. */
const HTTP_PORT = 8088;
const RTP_PORT = 5004;

/** Why the Janus baseline cannot run here, or undefined when it can. */
export function janusUnavailable(): string | undefined {
  if (!janusInstalled()) return JANUS_MISSING;
  if (process.getuid?.() !== 0) {
    return 'the janus baseline runs Janus in a network namespace of its own: run the benchmark as root';
  }
  return undefined;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A namespace with lo up and a veth pair to this one, addressed as NET says. */
function createNamespace(ns: string, hostIf: string): void {
  ip('netns', 'add', ns);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'janus0', 'netns', ns);
  ip('addr', 'add', `${NET.clients}/${NET.prefixLength}`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('-n', ns, 'addr', 'add', `${NET.janus}/${NET.prefixLength}`, 'dev', 'janus0');
  ip('-n', ns, 'link', 'set', 'janus0', 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
}

/** Deletes the namespace, and with it the veth pair; nothing if it is gone. */
function deleteNamespace(ns: string): void {
  try {
    ip('netns', 'del', ns);
  } catch {
    // Not there (never created, or deleted already).
  }
}

interface Layout {
  dir: string;
  httpPort: number;
  rtpPort: number;
  /** Janus's address: its ICE candidates, HTTP API and RTP input. */
  address: string;
}

/** The three configuration files, in libconfig syntax (Janus's .jcfg). */
function writeConfig(l: Layout): void {
  const sub = (name: string) => join(l.dir, name);
  // Only the streaming plugin and the HTTP transport exist in the folders Janus loads from;
  // events and loggers folders are empty (Janus loads every .so it finds there).
  for (const name of ['plugins', 'transports', 'events', 'loggers']) mkdirSync(sub(name));
  symlinkSync(STREAMING_SO, join(sub('plugins'), basename(STREAMING_SO)));
  symlinkSync(HTTP_SO, join(sub('transports'), basename(HTTP_SO)));
  writeFileSync(
    join(l.dir, 'janus.jcfg'),
    `general: {
  configs_folder = "${l.dir}"
  plugins_folder = "${sub('plugins')}"
  transports_folder = "${sub('transports')}"
  events_folder = "${sub('events')}"
  loggers_folder = "${sub('loggers')}"
  debug_level = ${DEBUG_LEVEL}
  server_name = "fanout-bench"
  # Sessions never time out: the viewers keep no long poll open once they watch.
  session_timeout = 0
}
certificates: {
}
media: {
  ipv6 = false
  rtp_port_range = "${RTP_PORT_RANGE}"
}
nat: {
  nice_debug = false
  ignore_mdns = true
  # No STUN or TURN server: host candidates on this address only.
  ice_enforce_list = "${l.address}"
}
plugins: {
}
transports: {
}
loggers: {
}
events: {
  broadcast = false
}
`,
  );
  writeFileSync(
    join(l.dir, 'janus.plugin.streaming.jcfg'),
    `general: {
  events = false
}
fanout: {
  type = "rtp"
  id = ${MOUNTPOINT_ID}
  description = "fan-out benchmark"
  audio = false
  video = true
  videoport = ${l.rtpPort}
  videoiface = "${l.address}"
  videopt = 96
  # videocodec replaces 1.x's deprecated videortpmap ("VP8/90000").
  videocodec = "vp8"
}
`,
  );
  writeFileSync(
    join(l.dir, 'janus.transport.http.jcfg'),
    `general: {
  json = "plain"
  base_path = "/janus"
  http = true
  port = ${l.httpPort}
  ip = "${l.address}"
  https = false
}
admin: {
  admin_http = false
  admin_https = false
}
cors: {
}
`,
  );
}

export class JanusServer {
  /** The HTTP API's base URL. */
  readonly url: string;
  /** Where the mountpoint takes plain RTP: Janus's address and this UDP port. */
  readonly rtpHost = NET.janus;
  readonly rtpPort: number;
  /** The address the publisher and viewers use (ICE host candidates): this end of the veth. */
  readonly clientAddress = NET.clients;
  readonly mountpointId = MOUNTPOINT_ID;
  readonly #proc: ChildProcess;
  readonly #dir: string;
  readonly #ns: string;
  readonly #exited: Promise<void>;
  #control: { session: JanusSession; handle: number } | undefined;
  #state: 'running' | 'stopping' | 'stopped' = 'running';
  #version = '';
  #spawnError: Error | undefined;

  private constructor(proc: ChildProcess, dir: string, ns: string, url: string, rtpPort: number) {
    this.#proc = proc;
    this.#dir = dir;
    this.#ns = ns;
    this.url = url;
    this.rtpPort = rtpPort;
    this.#exited = new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve();
      else {
        proc.once('exit', () => resolve());
        // A process that never started emits 'error' and maybe no 'exit'.
        proc.once('error', (error) => {
          this.#spawnError = error;
          resolve();
        });
      }
    });
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  /** Janus's version_string from its server info. */
  get version(): string {
    return this.#version;
  }

  /**
   * Writes the configuration, starts Janus and resolves once its HTTP API answers
   * `{"janus": "info"}` and the streaming plugin knows the mountpoint.
   */
  static async start(): Promise<JanusServer> {
    const unavailable = janusUnavailable();
    if (unavailable) throw new Error(unavailable);
    const dir = mkdtempSync(join(tmpdir(), 'fanout-janus-'));
    const ns = `fanout-janus-${process.pid}`;
    let proc: ChildProcess | undefined;
    // Until stop() takes over: a crash of the benchmark still ends Janus, deletes the
    // namespace and removes the dir.
    onExit(() => {
      proc?.kill('SIGKILL');
      deleteNamespace(ns);
      rmSync(dir, { recursive: true, force: true });
    });
    try {
      createNamespace(ns, `fjanus${process.pid % 100_000}`);
      const layout: Layout = { dir, httpPort: HTTP_PORT, rtpPort: RTP_PORT, address: NET.janus };
      writeConfig(layout);
      proc = spawn(
        'ip',
        // `ip netns exec` execs Janus in place: the child's pid is Janus's (its CPU is read
        // from /proc/<pid>/stat). -N: no logging to stdout, -L: to this file instead.
        [
          ...['netns', 'exec', ns, JANUS_BIN, '-F', dir, '-C', join(dir, 'janus.jcfg')],
          ...['-N', '-L', join(dir, 'janus.log'), '-o'],
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const stderr: string[] = [];
      proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        stderr.push(chunk);
        if (stderr.length > 50) stderr.shift();
      });
      const server = new JanusServer(
        proc,
        dir,
        ns,
        `http://${layout.address}:${layout.httpPort}/janus`,
        layout.rtpPort,
      );
      try {
        await server.#waitReady(stderr);
      } catch (error) {
        await server.stop();
        throw error;
      }
      return server;
    } catch (error) {
      if (proc === undefined) {
        deleteNamespace(ns);
        rmSync(dir, { recursive: true, force: true });
      }
      throw error;
    }
  }

  async #waitReady(stderr: string[]): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let last: unknown;
    for (;;) {
      if (this.#spawnError) throw new Error(`${JANUS_BIN}: ${this.#spawnError.message}`);
      if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) {
        throw new Error(
          `janus exited (${this.#proc.exitCode ?? this.#proc.signalCode}) while starting:\n${this.#logTail()}${stderr.join('')}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `janus did not answer {"janus":"info"} at ${this.url} within ${START_TIMEOUT_MS} ms (${String(last)}):\n${this.#logTail()}`,
        );
      }
      try {
        this.#version = await janusServerInfo(this.url, 1_000);
        break;
      } catch (error) {
        last = error;
        await sleep(100);
      }
    }
    const session = await JanusSession.create(this.url);
    const handle = await session.attach(JANUS_STREAMING);
    this.#control = { session, handle };
    await this.viewers().catch((error: unknown) => {
      throw new Error(
        `janus has no mountpoint ${this.mountpointId}: ${String(error)}\n${this.#logTail()}`,
      );
    });
  }

  /** How many viewers the mountpoint has now (the streaming plugin's `info`). */
  async viewers(): Promise<number> {
    const control = this.#control;
    if (!control || this.#state !== 'running') throw new Error('janus is not running');
    const reply = await control.session.message(control.handle, {
      request: 'info',
      id: this.mountpointId,
    });
    const info = reply.pluginData?.info;
    const viewers =
      typeof info === 'object' && info !== null
        ? (info as Record<string, unknown>).viewers
        : undefined;
    if (typeof viewers !== 'number') {
      throw new JanusApiError(`info on mountpoint ${this.mountpointId}: no viewer count`);
    }
    return viewers;
  }

  /** The end of Janus's log, for error messages. */
  #logTail(): string {
    try {
      return `${readFileSync(join(this.#dir, 'janus.log'), 'utf8').split('\n').slice(-30).join('\n')}\n`;
    } catch {
      return '(no janus.log)\n';
    }
  }

  /** Ends Janus (SIGTERM, SIGKILL after 5 s) and removes its temp dir; idempotent. */
  async stop(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#state = 'stopping';
    const control = this.#control;
    this.#control = undefined;
    // Best effort: Janus is about to end anyway, with every session it has.
    await control?.session.destroy().catch(() => {});
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      this.#proc.kill('SIGTERM');
      const timer = setTimeout(() => this.#proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    deleteNamespace(this.#ns);
    rmSync(this.#dir, { recursive: true, force: true });
    this.#state = 'stopped';
  }
}
