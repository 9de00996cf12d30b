#!/usr/bin/env node
import { parseArgs } from 'node:util';
import {
  configMarkdownTable,
  createRootLogger,
  loadConfig,
  parseDurationSeconds,
  SfuError,
} from '@geosfu/common';
import { openControlPlane } from '@geosfu/registry';
import { RedisRelayBus } from '@geosfu/relay';
/**
 * sfu-node: the SFU process.
 *   sfu-node [--dev] [flags]                 run a node (flags and env: see the README table)
 *   sfu-node token --room R --identity I     print an access token minted from SFU_API_KEY/SECRET
 *   sfu-node rooms list|get|delete|kick|mute the room service API (roomsCli.ts)
 *   sfu-node config-table                    print the configuration table of the README
 */
import { cliTokens } from './cliTokens.js';
import { ROOMS_USAGE, rooms } from './roomsCli.js';
import { SfuNode } from './SfuNode.js';

const USAGE = `usage:
  sfu-node [--dev] [--port 7880] [--region ams] [...]   run a node; see the README's configuration table
  sfu-node token --room R --identity I [--name N] [--can-pin-region] [--admin]
                 [--grant roomCreate|roomList|roomAdmin ...] [--ttl 1h] [--dev]
${ROOMS_USAGE}
  sfu-node config-table`;

async function token(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      room: { type: 'string' },
      identity: { type: 'string' },
      name: { type: 'string' },
      'can-pin-region': { type: 'boolean' },
      admin: { type: 'boolean' },
      grant: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '1h' },
      dev: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.room || !values.identity)
    throw new SfuError('INVALID_ARGUMENT', 'token needs --room and --identity');
  const roomGrants: Record<string, boolean> = {};
  for (const grant of values.grant ?? []) {
    if (grant !== 'roomCreate' && grant !== 'roomList' && grant !== 'roomAdmin')
      throw new SfuError(
        'INVALID_ARGUMENT',
        `--grant ${grant}: use roomCreate, roomList or roomAdmin`,
      );
    roomGrants[grant] = true;
  }
  const tokens = cliTokens(
    values.dev,
    "set SFU_API_KEY and SFU_API_SECRET (the node's), or pass --dev for a dev node",
  );
  const jwt = await tokens.mint({
    room: values.room,
    identity: values.identity,
    name: values.name ?? values.identity,
    grants: {
      canPinRegion: values['can-pin-region'] === true,
      admin: values.admin === true,
      ...roomGrants,
    },
    ttlSeconds: parseDurationSeconds(values.ttl),
  });
  process.stdout.write(`${jwt}\n`);
}

async function serve(argv: string[]): Promise<void> {
  const config = loadConfig(argv);
  const logger = createRootLogger({ level: config.logLevel });
  const plane = await openControlPlane(config, logger);
  // Relays exist only in a cluster: a single node has every participant already.
  const bus = plane.redis
    ? new RedisRelayBus({
        redis: plane.redis,
        nodeId: config.nodeId,
        secret: config.clusterSecret,
        logger,
      })
    : undefined;
  const node = new SfuNode(config, logger, plane, bus);
  // This function created the control plane and the bus, so it closes them, after the node.
  const closeAll = async () => {
    await node.close();
    await bus?.close();
    await plane.close();
  };
  let started: Awaited<ReturnType<SfuNode['start']>>;
  try {
    await bus?.start();
    started = await node.start();
  } catch (error) {
    await closeAll();
    throw error;
  }
  const { url, port, metricsPort } = started;
  logger.info(
    { url, port, metricsPort, nodeId: config.nodeId, region: config.region, dev: config.dev },
    'node listening',
  );
  if (config.dev) logger.warn(`dev mode: demo page at ${url}/ — never expose a dev node`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining, then shutting down');
    node
      .drain()
      .then(closeAll)
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  // A drain through the admin API ends the process too, once every session has moved.
  node.on('drained', () => stop('admin drain'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'token') return token(rest);
  if (command === 'rooms') return rooms(rest);
  if (command === 'config-table') {
    process.stdout.write(`${configMarkdownTable()}\n`);
    return;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  return serve(command === 'serve' ? rest : process.argv.slice(2));
}

main().catch((error: unknown) => {
  const e = error instanceof SfuError ? error : undefined;
  process.stderr.write(
    `sfu-node: ${e ? `${e.code}: ` : ''}${error instanceof Error ? error.message : String(error)}\n`,
  );
  if (!e) process.stderr.write(`${USAGE}\n`);
  process.exit(e?.code === 'INVALID_ARGUMENT' || e?.code === 'CONFIG_INVALID' ? 2 : 1);
});
