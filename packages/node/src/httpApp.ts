import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type AccessToken,
  type Logger,
  type NodeConfig,
  SfuError,
  type TokenService,
} from '@geosfu/common';
import {
  bearerToken,
  type ControlPlane,
  devTokenRouter,
  errorHandlers,
  jsonBody,
  type RoomService,
  roomServiceRouter,
  routeRouter,
  routeService,
} from '@geosfu/registry';
import express from 'express';
import type { HttpSessions } from './HttpSessions.js';
import { httpSessionRouter } from './httpSessionApi.js';
import type { NodeMetrics } from './metrics.js';
import type { Room } from './Room.js';

/** The built demo page (packages/client/dist/web), the same relative path from src/ and dist/. */
const WEB_ROOT = fileURLToPath(new URL('../../client/dist/web/', import.meta.url));

/** What the HTTP API reads from and asks of its node. */
export interface HttpHost {
  readonly config: NodeConfig;
  readonly metrics: NodeMetrics;
  readonly plane: ControlPlane;
  readonly tokens: TokenService;
  readonly nodeId: string;
  readonly region: string;
  readonly version: string;
  readonly state: string;
  readonly url: string;
  readonly rooms: ReadonlyMap<string, Room>;
  readonly sessionCount: number;
  /** The WHIP and WHEP sessions (`/v1/whip`, `/v1/whep`, `/v1/sessions`). */
  readonly httpSessions: HttpSessions;
  readonly roomService: RoomService;
  /** Starts a drain (in the background) on an admin's request. */
  requestDrain(by: string): void;
}

/**
 * The node's express app: health, metrics, routing, WHIP and WHEP, the admin API, dev tokens
 * and the demo page, with the body limits and error handling every HTTP app of the cluster shares
 * (`jsonBody`, `errorHandlers` in `@geosfu/registry`).
 */
export function createHttpApp(host: HttpHost, logger: Logger): express.Express {
  const { config } = host;
  const app = express();
  app.disable('x-powered-by');
  app.use(jsonBody());
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', nodeId: host.nodeId, region: host.region, version: host.version });
  });
  app.get('/readyz', (_req, res) => {
    const ready = host.state === 'active';
    res.status(ready ? 200 : 503).json({ ready, state: host.state });
  });
  // With SFU_METRICS_PORT, /metrics is served there only: that port can be closed to the
  // internet while this one is public (metrics tell load, regions and topology).
  if (config.metricsPort === undefined) {
    app.get('/metrics', async (_req, res, next) => {
      try {
        res.set('Content-Type', host.metrics.registry.contentType);
        res.send(await host.metrics.registry.metrics());
      } catch (error) {
        next(error);
      }
    });
  }
  const routes = routeService(host.plane, config, logger, (result) =>
    host.metrics.routeDecisions.inc({ result }),
  );
  app.use(routeRouter(routes));
  app.use(
    httpSessionRouter({
      nodeId: host.nodeId,
      httpSessions: host.httpSessions,
      routes,
    }),
  );
  const admin = async (req: express.Request): Promise<AccessToken> => {
    const token = await host.tokens.verify(bearerToken(req));
    if (!token.grants.admin) {
      throw new SfuError(
        'PERMISSION_DENIED',
        'the admin API needs a token with the admin grant (sfu-node token --admin)',
      );
    }
    return token;
  };
  app.get('/v1/admin/rooms/:room', async (req, res, next) => {
    try {
      await admin(req);
      const room = host.rooms.get(req.params.room);
      res.json({ room: req.params.room, nodeId: host.nodeId, participants: room?.infos() ?? [] });
    } catch (error) {
      next(error);
    }
  });
  app.post('/v1/admin/drain', async (req, res, next) => {
    try {
      const token = await admin(req);
      host.requestDrain(token.identity);
      res.status(202).json({ state: host.state, sessions: host.sessionCount });
    } catch (error) {
      next(error);
    }
  });
  app.use(roomServiceRouter(host.roomService, host.tokens, host.version));
  if (config.dev) app.use(devTokenRouter(host.tokens, () => host.url));
  if (existsSync(WEB_ROOT)) {
    // The page's source map (about 1 MB, the client's whole source) is for debugging the
    // page: only a dev node serves it.
    if (!config.dev) {
      app.use((req, _res, next) => {
        next(req.path.endsWith('.map') ? new SfuError('NOT_FOUND', 'no such file') : undefined);
      });
    }
    app.use(express.static(WEB_ROOT, { index: 'index.html', maxAge: 0 }));
  } else {
    app.get('/', (_req, res) => {
      res
        .status(503)
        .type('text/plain')
        .send('The demo page is not built: run `npm run build` and restart.\n');
    });
  }
  app.use(...errorHandlers(logger));
  return app;
}
