/**
 * Setting up the end-to-end tests: the demo page bundle built from the sources, and the wait
 * until a node's /v1/route sees the rest of the cluster.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import type { NodeProcess } from '../helpers/node-process.js';

const BUILD_WEB = fileURLToPath(
  new URL('../../packages/client/scripts/build-web.mjs', import.meta.url),
);
const ROUTE_TIMEOUT_MS = 10_000;
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

/** Builds the demo page, so that a test sees what the sources say, not a stale bundle. */
export function buildDemoPage(): void {
  const build = spawnSync(process.execPath, [BUILD_WEB], { encoding: 'utf8' });
  assert.equal(build.status, 0, `building the demo page failed:\n${build.stderr}`);
}

/**
 * Polls `via`'s own /v1/route for `room` with `params` (a probe token that may pin a node or
 * a region) until `accepts` takes the answer: registry membership reaches every node only
 * after a heartbeat. Fails with `failure` and the last answer.
 */
export async function waitForRoute(
  via: NodeProcess,
  room: string,
  params: Record<string, string>,
  accepts: (response: Response, body: string) => boolean,
  failure: string,
): Promise<void> {
  const token = await tokens.mint({
    room,
    identity: 'probe',
    name: 'probe',
    grants: { canPinRegion: true },
  });
  const deadline = Date.now() + ROUTE_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const url = `${via.url}/v1/route?${new URLSearchParams({ room, ...params })}`;
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    last = await response.text();
    if (accepts(response, last)) return;
    await sleep(100);
  }
  assert.fail(`${failure}: ${last}`);
}
