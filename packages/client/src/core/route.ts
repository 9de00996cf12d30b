/**
 * `GET /v1/route`: asks any node (or `sfu-directory`) which node to connect to for a room.
 * Browser-safe: it uses the global `fetch` and imports only zod and the protocol module.
 */
import { type ErrorCode, isErrorCode } from '@geosfu/common/protocol';
import { z } from 'zod';
import { SignalError } from './SignalClient.js';

/** Why the server picked the node (see packages/registry/src/NodeSelector.ts). */
export const ROUTE_REASONS = [
  'nearest',
  'least-loaded-nearby',
  'pinned-region',
  'pinned-node',
  'default-region',
  'room-affinity',
] as const;
export type RouteReason = (typeof ROUTE_REASONS)[number];

const httpUrl = z
  .string()
  .refine((s) => /^https?:\/\//i.test(s) && URL.canParse(s), 'expected an http(s) URL');
const wsUrl = z
  .string()
  .refine((s) => /^wss?:\/\//i.test(s) && URL.canParse(s), 'expected a ws(s) URL');

/** The answer of `GET /v1/route`. */
export const RouteAnswer = z.object({
  nodeId: z.string().min(1),
  region: z.string().min(1),
  /** The node's http(s) base URL. */
  url: httpUrl,
  /** The node's signalling websocket URL: connect here. */
  signalUrl: wsUrl,
  /** Great-circle distance from the caller, rounded; null when the caller was not located. */
  distanceKm: z.number().nonnegative().nullable(),
  reason: z.enum(ROUTE_REASONS),
});
export type RouteAnswer = z.infer<typeof RouteAnswer>;

/** `{error: {code, message}}`, the error body of the REST API. */
const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});

export interface RouteOptions {
  /** The room to join; when absent the server takes the token's room. */
  room?: string | undefined;
  /** Pin a region (needs a token with the `canPinRegion` grant). Not with `node`. */
  region?: string | undefined;
  /** Pin a node by id (needs `canPinRegion` too). Not with `region`. */
  node?: string | undefined;
  /** Gives up after this long with SignalError TIMEOUT (default 10 s). */
  timeoutMs?: number;
  /** Aborts the request (rejects with SignalError CLOSED). */
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** The `/v1/route` endpoint of a node or directory given as http(s):// or ws(s)://. */
export function routeEndpoint(baseUrl: string): URL {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw new SignalError('INVALID_ARGUMENT', `not a URL: "${baseUrl}"`);
  }
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new SignalError(
      'INVALID_ARGUMENT',
      `unsupported URL scheme "${u.protocol}" in ${baseUrl}`,
    );
  }
  return new URL('/v1/route', u.origin);
}

/** The code for an error response whose body carries none we know. */
function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'TOKEN_INVALID';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 400) return 'INVALID_ARGUMENT';
  if (status === 503) return 'SERVICE_UNAVAILABLE';
  if (status === 504) return 'TIMEOUT';
  return 'INTERNAL';
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat || '(empty body)';
}

/**
 * Asks `baseUrl` (any node, or the directory) where to connect for `room`, with the access
 * token in `Authorization: Bearer`. Resolves with the validated answer; rejects with a
 * SignalError: the server's own code for an error response (TOKEN_*, PERMISSION_DENIED,
 * NO_NODE_AVAILABLE, ...), SERVICE_UNAVAILABLE when the server cannot be reached, TIMEOUT,
 * BAD_MESSAGE when the answer is not the JSON it should be.
 */
export async function route(
  baseUrl: string,
  token: string,
  options: RouteOptions,
): Promise<RouteAnswer> {
  if (options.region && options.node) {
    throw new SignalError('INVALID_ARGUMENT', 'pin a region or a node, not both');
  }
  const endpoint = routeEndpoint(baseUrl);
  if (options.room) endpoint.searchParams.set('room', options.room);
  if (options.region) endpoint.searchParams.set('region', options.region);
  if (options.node) endpoint.searchParams.set('node', options.node);

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  let text: string;
  try {
    response = await fetch(endpoint, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      signal,
    });
    text = await response.text();
  } catch (error) {
    if (timeout.aborted) {
      throw new SignalError(
        'TIMEOUT',
        `${endpoint.origin}/v1/route: no answer within ${timeoutMs} ms`,
      );
    }
    if (options.signal?.aborted) {
      throw new SignalError('CLOSED', `${endpoint.origin}/v1/route: request aborted`);
    }
    // Node's fetch puts the reason (ECONNREFUSED, ...) in `cause`; browsers say little more.
    const cause = (error as { cause?: { message?: string } }).cause?.message;
    throw new SignalError(
      'SERVICE_UNAVAILABLE',
      `cannot reach ${endpoint.origin}/v1/route: ${cause ?? (error as Error).message}`,
    );
  }

  let body: unknown;
  let isJson = true;
  try {
    body = JSON.parse(text);
  } catch {
    isJson = false;
  }

  if (!response.ok) {
    const error = isJson ? ErrorBody.safeParse(body) : undefined;
    if (error?.success) {
      const { code, message } = error.data.error;
      throw new SignalError(
        isErrorCode(code) ? code : codeForStatus(response.status),
        isErrorCode(code) ? message : `${code}: ${message}`,
      );
    }
    const hint =
      response.status === 404 ? ' (is this an SFU node or sfu-directory with /v1/route?)' : '';
    throw new SignalError(
      codeForStatus(response.status),
      `${endpoint.origin}/v1/route answered HTTP ${response.status}${hint}: ${excerpt(text)}`,
    );
  }

  if (!isJson) {
    throw new SignalError(
      'BAD_MESSAGE',
      `${endpoint.origin}/v1/route answered something that is not JSON: ${excerpt(text)}`,
    );
  }
  const parsed = RouteAnswer.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') || '(root)';
    throw new SignalError(
      'BAD_MESSAGE',
      `${endpoint.origin}/v1/route answered an invalid route at ${where}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}
