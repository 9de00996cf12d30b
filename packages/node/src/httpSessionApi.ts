import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type IceServer, LIMITS, SfuError } from '@geosfu/common';
import {
  bearerToken,
  HTTP_SESSION_KINDS,
  httpSessionCors,
  httpSessionPreflight,
  pathParam,
  type RouteService,
  routeHttpSession,
} from '@geosfu/registry';
import express, { type NextFunction, type Request, type Response, Router } from 'express';
import type { HttpSessions } from './HttpSessions.js';

/** The WHEP player page, the same relative path from src/ and dist/. */
const PLAYER = fileURLToPath(new URL('../public/whep.html', import.meta.url));

/** What the WHIP/WHEP endpoints need from their node. */
export interface HttpSessionHost {
  readonly nodeId: string;
  readonly httpSessions: HttpSessions;
  readonly routes: RouteService;
}

const SDP = 'application/sdp';
const SDP_FRAGMENT = 'application/trickle-ice-sdpfrag';

/** RFC 9725 section 4.6: the ICE servers a client should use, as Link headers. */
function iceServerLinks(servers: readonly IceServer[]): string[] {
  const links: string[] = [];
  for (const server of servers) {
    for (const url of Array.isArray(server.urls) ? server.urls : [server.urls]) {
      const auth =
        server.username !== undefined && server.credential !== undefined
          ? `; username="${server.username}"; credential="${server.credential}"; credential-type="password"`
          : '';
      links.push(`<${url}>; rel="ice-server"${auth}`);
    }
  }
  return links;
}

/** The body as text, or a coded error when it is not of `type` (RFC 9725: 415). */
function textOf(req: Request, type: string): string {
  if (!req.is(type))
    throw new SfuError('UNSUPPORTED_ENCODING', `send the body as Content-Type: ${type}`);
  return typeof req.body === 'string' ? req.body : '';
}

function one(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * WHIP (RFC 9725) and WHEP: `POST /v1/whip/<room>` publishes the offer's tracks,
 * `POST /v1/whep/<room>[?participant=<identity>]` watches the room (or one participant);
 * each creates `/v1/sessions/<id>`, which takes PATCH (trickle ICE) and DELETE (leave).
 * A POST goes where `/v1/route` would send the caller: to another node by a 307 redirect
 * (`routeHttpSession`, shared with `sfu-directory`).
 */
export function httpSessionRouter(host: HttpSessionHost): Router {
  const router = Router();
  const body = express.text({ type: [SDP, SDP_FRAGMENT], limit: LIMITS.maxSdpLength });
  const sized = (req: Request, res: Response, next: NextFunction) =>
    body(req, res, (error?: unknown) => {
      const tooLarge = (error as { type?: unknown } | undefined)?.type === 'entity.too.large';
      next(
        tooLarge
          ? new SfuError('PAYLOAD_TOO_LARGE', `an SDP is at most ${LIMITS.maxSdpLength} bytes`)
          : error,
      );
    });

  for (const kind of HTTP_SESSION_KINDS) {
    const path = `/v1/${kind}/:room`;
    router.options(path, httpSessionPreflight('POST, OPTIONS', { 'Accept-Post': SDP }));
    router.post(path, sized, async (req: Request, res: Response, next: NextFunction) => {
      httpSessionCors(res);
      try {
        const room = pathParam(req, 'room');
        const token = bearerToken(req);
        const watch = one(req.query.participant);
        if (one(req.query.node) !== host.nodeId) {
          const route = await routeHttpSession(host.routes, req, kind);
          if (route.nodeId !== host.nodeId) {
            res.redirect(307, route.url);
            return;
          }
        }
        const sdp = textOf(req, SDP);
        const { session, answer, iceServers } =
          kind === 'whip'
            ? await host.httpSessions.publish(room, token, sdp)
            : await host.httpSessions.view(room, token, sdp, watch);
        const links = iceServerLinks(iceServers);
        res
          .status(201)
          .set({
            'Content-Type': SDP,
            Location: `/v1/sessions/${session.id}`,
            ETag: session.etag,
            'Accept-Patch': SDP_FRAGMENT,
            ...(links.length > 0 ? { Link: links } : {}),
          })
          .send(Buffer.from(answer, 'utf8')); // a string would get '; charset=utf-8' added
      } catch (error) {
        next(error);
      }
    });
  }

  router.options('/v1/sessions/:id', httpSessionPreflight('PATCH, DELETE, OPTIONS', {}));
  router.patch('/v1/sessions/:id', sized, async (req: Request, res: Response, next) => {
    httpSessionCors(res);
    try {
      const fragment = textOf(req, SDP_FRAGMENT);
      await host.httpSessions.patch(pathParam(req, 'id'), fragment, one(req.headers['if-match']));
      res.status(204).end();
    } catch (error) {
      next(error);
    }
  });
  router.delete('/v1/sessions/:id', async (req: Request, res: Response, next) => {
    httpSessionCors(res);
    try {
      await host.httpSessions.delete(pathParam(req, 'id'));
      res.status(200).end();
    } catch (error) {
      next(error);
    }
  });

  router.get('/whep', (_req, res, next) => {
    if (!existsSync(PLAYER)) {
      next(new SfuError('NOT_FOUND', 'the WHEP player page is missing from this install'));
      return;
    }
    res.sendFile(PLAYER);
  });
  return router;
}
