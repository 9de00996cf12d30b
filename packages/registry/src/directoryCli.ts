#!/usr/bin/env node
/**
 * sfu-directory: the cluster's global entry point. Answers `GET /v1/route` from the Redis
 * registry and the room service API (its commands go to the nodes), carries no media. Same settings as `sfu-node` (REDIS_URL required; SFU_HTTP_*,
 * SFU_METRICS_PORT, SFU_API_KEY/SECRET, SFU_GEOIP_DB, SFU_DEFAULT_REGION, SFU_TRUST_PROXY apply).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRootLogger, loadConfig, SfuError } from '@geosfu/common';
import { openControlPlane, roomService, routeService } from './ControlPlane.js';
import { Directory } from './Directory.js';
import { roomServiceRouter } from './roomServiceApi.js';

const VERSION = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

const USAGE = `usage: sfu-directory [--port 7880] [--host 0.0.0.0] [--metrics-port P] [...]
  The cluster's global entry point: answers GET /v1/route from the Redis registry, no media.
  Needs REDIS_URL, SFU_API_KEY and SFU_API_SECRET (or --dev); every other setting is the one of
  sfu-node of the same name (see the README's configuration table, or \`sfu-node config-table\`).`;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const config = loadConfig(argv);
  const logger = createRootLogger({ level: config.logLevel });
  const plane = await openControlPlane(config, logger, { watchOnly: true });
  const directory = new Directory({
    registry: plane.registry,
    routes: (onDecision) => routeService(plane, config, logger, onDecision),
    tokens: plane.tokens,
    dev: config.dev,
    logger,
    metricsPort: config.metricsPort,
    rooms: roomServiceRouter(roomService(plane, config), plane.tokens, VERSION),
  });
  const { url, port, metricsPort } = await directory.listen(
    config.httpPort,
    config.httpHost,
    config.publicUrl,
  );
  logger.info(
    { url, port, metricsPort, nodes: plane.registry.list().length },
    'directory listening',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void Promise.allSettled([directory.close(), plane.close()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  const e = error instanceof SfuError ? error : undefined;
  process.stderr.write(
    `sfu-directory: ${e ? `${e.code}: ` : ''}${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(e?.code === 'CONFIG_INVALID' ? 2 : 1);
});
