/**
 * A raw HTTP client for tests that send what `fetch` will not: any path bytes (a malformed
 * percent-encoding), any Content-Encoding and Content-Length, a body that lies about them.
 */
import { request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The body parsed as `{"error": {"code", "message"}}`, when it is one. */
  error: { code: string; message: string } | undefined;
}

export interface RawRequest {
  method?: string;
  /** Sent as is, without encoding. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs?: number;
}

export function rawRequest(base: string, options: RawRequest): Promise<RawResponse> {
  const url = new URL(base);
  const headers = { ...options.headers };
  // node:http sends a GET body without a length unless told; the server would read it as the
  // next request.
  if (options.body !== undefined && !Object.keys(headers).some((h) => /^content-length$/i.test(h)))
    headers['content-length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'GET',
        path: options.path,
        headers,
        // A fresh connection per request: a refused body may close the connection.
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let error: RawResponse['error'];
          try {
            const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
            if (typeof parsed.error?.code === 'string')
              error = { code: parsed.error.code, message: String(parsed.error.message) };
          } catch {
            error = undefined; // not JSON (a page, metrics): no coded error to report
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, error });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.path}: no answer in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

let marks = 0;

/**
 * Resolves once every line a node logged before this call has reached `logs`: it asks for a
 * path that does not exist and waits for the warn line of that 404, which the node writes
 * after everything before it (one ordered stdout). Use before asserting that a line is absent.
 */
export async function logsFlushed(
  node: { url: string; logs: Record<string, unknown>[] },
  timeoutMs = 10_000,
): Promise<void> {
  const path = `/log-flush-mark-${process.pid}-${++marks}`;
  await rawRequest(node.url, { path });
  const deadline = Date.now() + timeoutMs;
  while (!node.logs.some((l) => l.path === path)) {
    if (Date.now() > deadline) throw new Error(`the node's log did not show ${path} in time`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
