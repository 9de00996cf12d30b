import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, SfuError, type TokenService } from '@geosfu/common';
import express from 'express';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { errorHandlers, jsonBody } from './httpErrors.js';
import { httpSessionRedirectRouter } from './httpSessionRoute.js';
import { listenMetrics, type MetricsServer } from './metricsServer.js';
import type { NodeRegistry } from './NodeRegistry.js';
import type { RouteService } from './RouteService.js';
import { devTokenRouter, routeRouter } from './routeApi.js';

/**
 * `sfu-directory`: one global entry point that answers `/v1/route` for the whole cluster and
 * carries no media. It watches the registry (it does not register itself) and shares the
 * route logic with every node, so asking it or any node gives the same answer.
 */
export class Directory {
  readonly #registry: NodeRegistry;
  readonly #logger: Logger;
  readonly #metrics = new Registry();
  readonly #app: express.Express;
  readonly #metricsPort: number | undefined;
  #server: Server | undefined;
  #metricsServer: MetricsServer | undefined;
  #url: string | undefined;

  constructor(options: {
    registry: NodeRegistry;
    routes: (onDecision: (result: string) => void) => RouteService;
    tokens: TokenService;
    dev: boolean;
    logger: Logger;
    /** SFU_METRICS_PORT: serve `/metrics` there instead of on the HTTP port. */
    metricsPort?: number | undefined;
    /** The room service API (roomServiceRouter), the same as on every node. */
    rooms?: express.Router;
  }) {
    this.#registry = options.registry;
    this.#metricsPort = options.metricsPort;
    this.#logger = options.logger.child({ component: 'directory' });
    const registers = [this.#metrics];
    collectDefaultMetrics({ register: this.#metrics });
    const decisions = new Counter({
      name: 'sfu_route_decisions_total',
      help: 'Answers of /v1/route by reason, or error',
      labelNames: ['result'],
      registers,
    });
    const registry = this.#registry;
    const rejected = new Counter({
      name: 'sfu_cluster_messages_rejected_total',
      help: 'Node records, membership messages and expiry notices in Redis that did not verify',
      labelNames: ['kind', 'reason'],
      registers,
    });
    registry.on('rejected', (kind, reason) => rejected.inc({ kind, reason }));
    new Gauge({
      name: 'sfu_directory_nodes',
      help: 'Nodes in the registry by state',
      labelNames: ['state'],
      registers,
      collect() {
        const nodes = registry.list();
        this.set({ state: 'active' }, nodes.filter((n) => n.state === 'active').length);
        this.set({ state: 'draining' }, nodes.filter((n) => n.state === 'draining').length);
      },
    });
    const app = express();
    app.disable('x-powered-by');
    app.use(jsonBody());
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok', role: 'directory' });
    });
    app.get('/readyz', (_req, res) => {
      const ready = registry.connected;
      res.status(ready ? 200 : 503).json({ ready, nodes: registry.list().length });
    });
    if (this.#metricsPort === undefined) {
      app.get('/metrics', async (_req, res, next) => {
        try {
          res.set('Content-Type', this.#metrics.contentType).send(await this.#metrics.metrics());
        } catch (error) {
          next(error);
        }
      });
    }
    app.get('/v1/nodes', (_req, res) => {
      res.json({ nodes: registry.list() });
    });
    const routes = options.routes((result) => decisions.inc({ result }));
    app.use(routeRouter(routes));
    app.use(httpSessionRedirectRouter(routes));
    if (options.rooms) app.use(options.rooms);
    if (options.dev) app.use(devTokenRouter(options.tokens, () => this.url));
    app.use(...errorHandlers(this.#logger));
    this.#app = app;
  }

  get url(): string {
    if (!this.#url) throw new SfuError('CLOSED', 'the directory is not listening');
    return this.#url;
  }

  async listen(
    port: number,
    host: string,
    publicUrl?: string,
  ): Promise<{ url: string; port: number; metricsPort?: number }> {
    if (this.#metricsPort !== undefined)
      this.#metricsServer = await listenMetrics(this.#metrics, this.#metricsPort, host);
    const server = createServer(this.#app);
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    }).catch(async (error: unknown) => {
      await this.#metricsServer?.close();
      throw error;
    });
    const actual = (server.address() as AddressInfo).port;
    const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
    this.#url = (publicUrl ?? `http://${shown}:${actual}`).replace(/\/$/, '');
    return {
      url: this.#url,
      port: actual,
      ...(this.#metricsServer ? { metricsPort: this.#metricsServer.port } : {}),
    };
  }

  async close(): Promise<void> {
    await this.#metricsServer?.close();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
