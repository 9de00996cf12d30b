import { SfuError } from '@geosfu/common';
import { type Request, type Response, Router } from 'express';
import type { RouteService } from './RouteService.js';

function one(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * `GET /v1/route?room=R[&region=X|&node=ID]` with `Authorization: Bearer <token>`: the
 * same endpoint on every node and on `sfu-directory`. Errors are `{error: {code, message}}`.
 */
export function routeRouter(service: RouteService): Router {
  const router = Router();
  router.get('/v1/route', async (req: Request, res: Response) => {
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
      const e = error instanceof SfuError ? error : new SfuError('INTERNAL', 'route failed');
      res.status(e.status).json({ error: e.toJSON() });
    }
  });
  return router;
}
