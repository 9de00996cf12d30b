import { SfuError, type TokenService } from '@geosfu/common';
import { type NextFunction, type Request, type Response, Router } from 'express';
import { z } from 'zod';
import type { RouteService } from './RouteService.js';

function one(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The token of an `Authorization: Bearer <token>` header, if any. */
export function bearerToken(req: Request): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
}

/**
 * `GET /v1/route?room=R[&region=X|&node=ID]` with `Authorization: Bearer <token>`: the
 * same endpoint on every node and on `sfu-directory`.
 */
export function routeRouter(service: RouteService): Router {
  const router = Router();
  // A page served by one node asks another for a route (when it drains, say), so the
  // answer must be readable cross-origin. The token travels as a bearer header, never as a
  // cookie, so allowing any origin exposes nothing a caller does not already hold.
  router.options('/v1/route', (_req: Request, res: Response) => {
    res
      .set({
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET',
        'Access-Control-Allow-Headers': 'authorization',
        'Access-Control-Max-Age': '600',
      })
      .status(204)
      .end();
  });
  router.get('/v1/route', async (req: Request, res: Response, next: NextFunction) => {
    res.set('Access-Control-Allow-Origin', '*');
    try {
      const answer = await service.route({
        authorization: req.headers.authorization,
        room: one(req.query.room),
        region: one(req.query.region),
        node: one(req.query.node),
        socketAddress: req.socket.remoteAddress,
        forwardedFor: req.headers['x-forwarded-for'],
      });
      res.set('Cache-Control', 'no-store').json(answer);
    } catch (error) {
      next(error);
    }
  });
  return router;
}

const DevTokenBody = z.object({
  room: z.string().min(1).max(128),
  identity: z.string().min(1).max(128),
  name: z.string().max(128).optional(),
  canPinRegion: z.boolean().optional(),
});

/** `POST /v1/dev/token` (dev mode only): mints a token for the demo page and bots. */
export function devTokenRouter(tokens: TokenService, baseUrl: () => string): Router {
  const router = Router();
  router.post('/v1/dev/token', async (req: Request, res: Response, next: NextFunction) => {
    try {
      const body = DevTokenBody.safeParse(req.body);
      if (!body.success) {
        const issue = body.error.issues[0];
        throw new SfuError(
          'INVALID_ARGUMENT',
          `bad token request: ${issue?.path.join('.')} ${issue?.message}`,
        );
      }
      const token = await tokens.mint({
        room: body.data.room,
        identity: body.data.identity,
        name: body.data.name ?? body.data.identity,
        grants: { canPinRegion: body.data.canPinRegion ?? false },
      });
      res.json({ token, url: baseUrl() });
    } catch (error) {
      next(error);
    }
  });
  return router;
}
