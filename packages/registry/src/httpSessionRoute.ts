/**
 * Routing of WHIP and WHEP requests (`POST /v1/whip/<room>`, `POST /v1/whep/<room>`): the
 * node that serves them is the one `/v1/route` names for the caller. Any node and
 * `sfu-directory` answer a POST that belongs elsewhere with a 307 to that node's endpoint,
 * which keeps the method and the body (RFC 9110 section 15.4.8); `?node=<id>` there says the
 * request was routed already.
 */
import { type NextFunction, type Request, type Response, Router } from 'express';
import type { RouteService } from './RouteService.js';

export type HttpSessionKind = 'whip' | 'whep';
export const HTTP_SESSION_KINDS: readonly HttpSessionKind[] = ['whip', 'whep'];

/**
 * Browsers may publish and watch from any origin: the token travels in the Authorization
 * header, never in a cookie, so allowing every origin exposes nothing the caller does not
 * hold; the headers a WHIP client reads must be exposed to it.
 */
export function httpSessionCors(res: Response): void {
  res.set({
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Expose-Headers': 'Location, ETag, Link, Accept-Patch, Accept-Post',
  });
}

/** The answer to a CORS preflight of a WHIP/WHEP endpoint or session. */
export function httpSessionPreflight(methods: string, extra: Record<string, string> = {}) {
  return (_req: Request, res: Response): void => {
    httpSessionCors(res);
    res
      .set({
        'Access-Control-Allow-Methods': methods,
        'Access-Control-Allow-Headers': 'Authorization, Content-Type, If-Match',
        'Access-Control-Max-Age': '600',
        ...extra,
      })
      .status(204)
      .end();
  };
}

function one(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The path parameter `name` of `req` ('' when absent). */
export function pathParam(req: Request, name: string): string {
  const value: unknown = req.params[name];
  return typeof value === 'string' ? value : '';
}

/**
 * Where a WHIP/WHEP POST belongs: the routed node's id and its endpoint for this request.
 * Refuses like `/v1/route` (no token, a token for another room, no node available).
 */
export async function routeHttpSession(
  service: RouteService,
  req: Request,
  kind: HttpSessionKind,
): Promise<{ nodeId: string; url: string }> {
  const room = pathParam(req, 'room');
  const route = await service.route({
    authorization: req.headers.authorization,
    room,
    socketAddress: req.socket.remoteAddress,
    forwardedFor: req.headers['x-forwarded-for'],
  });
  const query = new URLSearchParams({ node: route.nodeId });
  const watch = one(req.query.participant);
  if (watch !== undefined) query.set('participant', watch);
  return {
    nodeId: route.nodeId,
    url: `${route.url}/v1/${kind}/${encodeURIComponent(room)}?${query}`,
  };
}

/** `sfu-directory`'s WHIP and WHEP endpoints: every POST is redirected to its node. */
export function httpSessionRedirectRouter(service: RouteService): Router {
  const router = Router();
  for (const kind of HTTP_SESSION_KINDS) {
    const path = `/v1/${kind}/:room`;
    router.options(
      path,
      httpSessionPreflight('POST, OPTIONS', { 'Accept-Post': 'application/sdp' }),
    );
    router.post(path, async (req: Request, res: Response, next: NextFunction) => {
      httpSessionCors(res);
      try {
        res.redirect(307, (await routeHttpSession(service, req, kind)).url);
      } catch (error) {
        next(error);
      }
    });
  }
  return router;
}
