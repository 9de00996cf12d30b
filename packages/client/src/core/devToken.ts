/**
 * Access tokens from a dev node's `POST /v1/dev/token` (only nodes started with --dev have it).
 * Browser-safe (global `fetch`): the demo page and the bot both get their tokens here.
 */

export class DevTokenError extends Error {
  override readonly name = 'DevTokenError';
}

/** The node's http(s) base URL for a URL given as http(s):// or ws(s)://. */
export function httpBaseUrl(url: string): URL {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new DevTokenError(`unsupported URL scheme "${u.protocol}" in ${url}`);
  }
  u.pathname = '/';
  u.search = '';
  u.hash = '';
  return u;
}

/** The message of a REST error body (`{error: {message}}`), else the start of the text. */
function errorMessage(text: string): string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page, say): show the text itself.
    return text.slice(0, 300);
  }
  const error = (body as { error?: { message?: unknown } } | null)?.error;
  return typeof error?.message === 'string' ? error.message : text.slice(0, 300);
}

export async function fetchDevToken(
  url: string,
  body: { room: string; identity: string; name?: string; canPinRegion?: boolean },
  timeoutMs = 10_000,
): Promise<string> {
  const endpoint = new URL('/v1/dev/token', httpBaseUrl(url));
  let response: Response;
  let text: string;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message;
    throw new DevTokenError(`cannot reach ${endpoint}: ${cause ?? (error as Error).message}`);
  }
  if (response.status === 404) {
    throw new DevTokenError(
      `${endpoint} does not hand out tokens (404): the node is not in dev mode (start it with --dev), or give a token`,
    );
  }
  if (!response.ok) {
    throw new DevTokenError(`${endpoint} answered ${response.status}: ${errorMessage(text)}`);
  }
  let token: unknown;
  try {
    token = (JSON.parse(text) as { token?: unknown }).token;
  } catch {
    throw new DevTokenError(
      `${endpoint} answered something that is not JSON: ${text.slice(0, 300)}`,
    );
  }
  if (typeof token !== 'string' || token.length === 0) {
    throw new DevTokenError(`${endpoint} answered without a "token" string`);
  }
  return token;
}
