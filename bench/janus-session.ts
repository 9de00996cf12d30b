/**
 * One session of Janus's HTTP API (https://janus.conf.meetecho.com/docs/rest.html), as much of
 * it as the fan-out benchmark uses: create, attach a plugin, plugin messages with or without
 * JSEP, long-polled events, destroy. Used by bench/janus-server.ts (its control session) and
 * by the Janus viewers of bench/fanout-client.ts.
 *
 * Replies arrive as `unknown` and are parsed here, once ({@link parseJanusMessage}); every
 * request has a timeout. Janus's ids are 64-bit on the wire but drawn below 2^53
 * (utils.c janus_random_uint64), so a JavaScript number holds them exactly.
 */
import { randomUUID } from 'node:crypto';

/** The streaming plugin's package name, what `attach` takes. */
export const JANUS_STREAMING = 'janus.plugin.streaming';

/** A session description as Janus carries it in `jsep`. */
export interface Jsep {
  type: 'offer' | 'answer';
  sdp: string;
}

/** A Janus API message, the fields this client reads. */
export interface JanusMessage {
  /** 'success', 'ack', 'event', 'error', 'server_info', 'keepalive', 'webrtcup', ... */
  janus: string;
  transaction?: string;
  /** create and attach: the new session's or handle's id (`data.id`). */
  id?: number;
  error?: { code: number; reason: string };
  /** The plugin's reply or event (`plugindata.data`). */
  pluginData?: Record<string, unknown>;
  jsep?: Jsep;
  /** server_info: `version_string`. */
  version?: string;
}

/** A request Janus refused or could not answer; `code` is Janus's error code when it sent one. */
export class JanusApiError extends Error {
  override readonly name = 'JanusApiError';
  readonly code: number | undefined;

  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/** Per request; a long poll waits up to {@link LONG_POLL_MS} on Janus's side. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Janus answers a long poll with a keepalive after 30 s without events (janus_http.c). */
const LONG_POLL_MS = 30_000;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one message of Janus's API; throws a JanusApiError on anything else. */
export function parseJanusMessage(raw: unknown): JanusMessage {
  if (!isRecord(raw) || typeof raw.janus !== 'string') {
    throw new JanusApiError(`not a Janus message: ${JSON.stringify(raw)?.slice(0, 200)}`);
  }
  const out: JanusMessage = { janus: raw.janus };
  if (typeof raw.transaction === 'string') out.transaction = raw.transaction;
  if (isRecord(raw.data) && typeof raw.data.id === 'number') out.id = raw.data.id;
  if (isRecord(raw.error)) {
    out.error = {
      code: typeof raw.error.code === 'number' ? raw.error.code : 0,
      reason: typeof raw.error.reason === 'string' ? raw.error.reason : 'no reason given',
    };
  }
  if (isRecord(raw.plugindata) && isRecord(raw.plugindata.data)) {
    out.pluginData = raw.plugindata.data;
  }
  if (typeof raw.version_string === 'string') out.version = raw.version_string;
  const jsep = raw.jsep;
  if (isRecord(jsep)) {
    if ((jsep.type !== 'offer' && jsep.type !== 'answer') || typeof jsep.sdp !== 'string') {
      throw new JanusApiError(`a jsep without type and sdp: ${JSON.stringify(jsep).slice(0, 200)}`);
    }
    out.jsep = { type: jsep.type, sdp: jsep.sdp };
  }
  return out;
}

/** A plugin's own error inside a reply or event (`plugindata.data.error`), if any. */
function pluginError(m: JanusMessage): JanusApiError | undefined {
  const data = m.pluginData;
  if (!data || data.error === undefined) return undefined;
  const code = typeof data.error_code === 'number' ? data.error_code : undefined;
  return new JanusApiError(`plugin error: ${String(data.error)}`, code);
}

async function request(
  url: string,
  body: Record<string, unknown> | undefined,
  timeoutMs: number,
): Promise<JanusMessage> {
  const transaction = randomUUID();
  const init: RequestInit = { signal: AbortSignal.timeout(timeoutMs) };
  if (body) {
    init.method = 'POST';
    init.headers = { 'content-type': 'application/json' };
    init.body = JSON.stringify({ ...body, transaction });
  }
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (error) {
    throw new JanusApiError(`${url}: ${(error as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new JanusApiError(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new JanusApiError(`${url}: not JSON: ${text.slice(0, 200)}`);
  }
  const m = parseJanusMessage(raw);
  if (m.janus === 'error') {
    throw new JanusApiError(`${url}: ${m.error?.reason ?? 'error'}`, m.error?.code);
  }
  if (body && m.transaction !== transaction) {
    throw new JanusApiError(`${url}: a reply to another transaction (${m.transaction})`);
  }
  return m;
}

/** `{"janus": "info"}`: resolves with the server's version_string once its HTTP API answers. */
export async function janusServerInfo(
  url: string,
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<string> {
  const m = await request(url, { janus: 'info' }, timeoutMs);
  if (m.janus !== 'server_info') throw new JanusApiError(`${url}: info answered ${m.janus}`);
  return m.version ?? 'unknown version';
}

export class JanusSession {
  readonly url: string;
  readonly id: number;
  #destroyed = false;

  private constructor(url: string, id: number) {
    this.url = url;
    this.id = id;
  }

  /** `url` is the API's base, e.g. http://127.0.0.1:8088/janus. */
  static async create(url: string): Promise<JanusSession> {
    const m = await request(url, { janus: 'create' }, REQUEST_TIMEOUT_MS);
    if (m.janus !== 'success' || m.id === undefined) {
      throw new JanusApiError(`${url}: create answered ${m.janus} without an id`);
    }
    return new JanusSession(url, m.id);
  }

  /** Attaches `plugin` (e.g. 'janus.plugin.streaming'); resolves with the handle's id. */
  async attach(plugin: string): Promise<number> {
    const m = await request(this.#path(), { janus: 'attach', plugin }, REQUEST_TIMEOUT_MS);
    if (m.janus !== 'success' || m.id === undefined) {
      throw new JanusApiError(`attach ${plugin}: answered ${m.janus} without an id`);
    }
    return m.id;
  }

  /**
   * A plugin message. A synchronous plugin request ('info', 'list') resolves with Janus's
   * 'success' and the plugin's answer in `pluginData`; an asynchronous one ('watch', 'start')
   * with 'ack', its result coming later as an event ({@link nextEvent}).
   */
  async message(handle: number, body: Record<string, unknown>, jsep?: Jsep): Promise<JanusMessage> {
    const m = await request(
      this.#path(handle),
      { janus: 'message', body, ...(jsep ? { jsep } : {}) },
      REQUEST_TIMEOUT_MS,
    );
    const error = pluginError(m);
    if (error) throw error;
    return m;
  }

  /**
   * Long-polls the session's events until one satisfies `wanted` (others are dropped), for at
   * most `timeoutMs`. A plugin error event rejects.
   */
  async nextEvent(wanted: (m: JanusMessage) => boolean, timeoutMs: number): Promise<JanusMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new JanusApiError(`session ${this.id}: no such event in ${timeoutMs} ms`);
      // Janus holds the poll up to LONG_POLL_MS; ours gives up at the deadline.
      const m = await request(
        `${this.#path()}?maxev=1`,
        undefined,
        Math.min(left, LONG_POLL_MS + 5_000),
      );
      const error = pluginError(m);
      if (error) throw error;
      if (wanted(m)) return m;
    }
  }

  /** Destroys the session (its handles hang up); idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await request(this.#path(), { janus: 'destroy' }, REQUEST_TIMEOUT_MS);
  }

  #path(handle?: number): string {
    return handle === undefined ? `${this.url}/${this.id}` : `${this.url}/${this.id}/${handle}`;
  }
}
