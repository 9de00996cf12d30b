/**
 * A typed signalling client for `/v1/signal`, usable in browsers (global WebSocket) and in
 * Node (pass the `ws` package's WebSocket). It validates every server frame, correlates
 * requests and responses by id, pings on the interval the server asks for, and reports the
 * server's events through a typed emitter.
 */
import {
  type ClientMessage,
  type ErrorCode,
  isErrorCode,
  parseServerMessage,
  type ServerMessage,
  type ServerMessageOf,
} from '@geosfu/common/protocol';

/** The subset of the WebSocket API this client needs (browser WebSocket and `ws` both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string | { toString(): string } }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

/** An error the server sent, or a local failure (timeout, closed socket), with its code. */
export class SignalError extends Error {
  override readonly name = 'SignalError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type ServerEvents = {
  [K in ServerMessage['type']]: (message: ServerMessageOf<K>) => void;
} & {
  close: (info: { code: number; reason: string }) => void;
};

type Listener = (arg: never) => void;

export const REQUEST_TIMEOUT_MS = 10_000;
const OPEN = 1;

/** Turns an http(s) URL of a node into its signalling websocket URL. */
export function signalUrlFor(baseUrl: string): string {
  const u = new URL(baseUrl);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/signal';
  return u.toString();
}

export class SignalClient {
  #ws: WebSocketLike | undefined;
  #listeners = new Map<string, Set<Listener>>();
  #pending = new Map<
    string,
    {
      resolve: (m: ServerMessage) => void;
      reject: (e: Error) => void;
      timer: ReturnType<typeof setTimeout>;
    }
  >();
  #nextId = 1;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /** Round-trip time of the last ping, in milliseconds. */
  lastRttMs: number | undefined;

  constructor(private readonly factory: WebSocketFactory) {}

  get connected(): boolean {
    return this.#ws?.readyState === OPEN;
  }

  /** Opens the websocket. Resolves when it is open; rejects if it closes first. */
  connect(url: string): Promise<void> {
    if (this.#ws) return Promise.reject(new SignalError('CLOSED', 'connect() was already called'));
    const ws = this.factory(url);
    this.#ws = ws;
    return new Promise((resolve, reject) => {
      let failure: string | undefined;
      ws.onopen = () => resolve();
      ws.onerror = (ev) => {
        // The close event follows with the code; Node's `ws` also says why (ECONNREFUSED, ...).
        if (ev instanceof Error) failure = ev.message;
      };
      ws.onclose = (ev) => {
        const info = { code: ev.code, reason: String(ev.reason) };
        reject(
          new SignalError('CLOSED', failure ?? `websocket closed (${info.code}) ${info.reason}`),
        );
        this.#teardown(`websocket closed (${info.code}) ${info.reason}`);
        this.#emit('close', info);
      };
      ws.onmessage = (ev) => this.#onFrame(ev.data);
    });
  }

  /** Sends a request and resolves with the server's reply (matched by id). */
  request<T extends ServerMessage['type']>(
    message: ClientMessage,
    expect: T,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<ServerMessageOf<T>> {
    const id = `r${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SignalError('TIMEOUT', `no reply to "${message.type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (m) => {
          if (m.type === expect) resolve(m as ServerMessageOf<T>);
          else reject(new SignalError('BAD_MESSAGE', `expected "${expect}", got "${m.type}"`));
        },
        reject,
        timer,
      });
      try {
        this.send({ ...message, id } as ClientMessage);
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(error as Error);
      }
    });
  }

  /** Sends a message that expects no reply. Throws SignalError CLOSED when not connected. */
  send(message: ClientMessage): void {
    if (!this.#ws || this.#ws.readyState !== OPEN) {
      throw new SignalError('CLOSED', `cannot send "${message.type}": the websocket is not open`);
    }
    this.#ws.send(JSON.stringify(message));
  }

  /** Joins with an access token; starts pinging at the interval the server asks for. */
  async join(
    token: string,
    options: { autoSubscribe?: boolean } = {},
  ): Promise<ServerMessageOf<'joined'>> {
    const joined = await this.request({ type: 'join', token, ...options }, 'joined');
    this.#startPing(joined.pingIntervalMs);
    return joined;
  }

  on<K extends keyof ServerEvents>(event: K, listener: ServerEvents[K]): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener);
    return () => set.delete(listener as Listener);
  }

  /** Resolves with the next message of this type (optionally one that matches `filter`). */
  next<K extends ServerMessage['type']>(
    type: K,
    filter: (m: ServerMessageOf<K>) => boolean = () => true,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<ServerMessageOf<K>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new SignalError('TIMEOUT', `no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(type, ((m: ServerMessageOf<K>) => {
        if (!filter(m)) return;
        clearTimeout(timer);
        off();
        resolve(m);
      }) as ServerEvents[K]);
    });
  }

  /** Sends `leave` (unless `leave` is false) and closes the socket. Idempotent. */
  close(code = 1000, reason = 'client closed', leave = true): void {
    if (this.#closed) return;
    if (leave && this.connected) {
      try {
        this.send({ type: 'leave' });
      } catch {
        // The socket closed between the check and the send: nothing left to tell the server.
      }
    }
    this.#ws?.close(code, reason);
    this.#teardown('client closed');
  }

  #startPing(intervalMs: number): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      if (this.connected) this.send({ type: 'ping', ts: Date.now() });
    }, intervalMs);
    // In Node, a ping timer alone must not keep the process alive.
    (this.#pingTimer as { unref?: () => void }).unref?.();
  }

  #teardown(why: string): void {
    this.#closed = true;
    clearInterval(this.#pingTimer);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new SignalError('CLOSED', `request ${id} abandoned: ${why}`));
    }
    this.#pending.clear();
  }

  #onFrame(data: unknown): void {
    const text = typeof data === 'string' ? data : String(data);
    const parsed = parseServerMessage(text);
    if (!parsed.ok) {
      this.#emit('error', {
        type: 'error',
        code: parsed.code,
        message: `from server: ${parsed.message}`,
      });
      return;
    }
    const m = parsed.message;
    if (m.type === 'pong') this.lastRttMs = Date.now() - m.ts;
    const ref = 'ref' in m ? m.ref : undefined;
    if (ref !== undefined) {
      const pending = this.#pending.get(ref);
      if (pending) {
        this.#pending.delete(ref);
        clearTimeout(pending.timer);
        if (m.type === 'error') {
          pending.reject(new SignalError(isErrorCode(m.code) ? m.code : 'INTERNAL', m.message));
        } else {
          pending.resolve(m);
        }
        return;
      }
    }
    this.#emit(m.type, m);
  }

  #emit(event: string, arg: unknown): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      (listener as (a: unknown) => void)(arg);
    }
  }
}
