/**
 * Three regional nodes and a directory on one real Redis: GeoIP routing to the nearest node,
 * draining, SIGTERM and SIGKILL removal (timed against the TTL), and re-registration after
 * Redis restarts empty.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import { Redis } from 'ioredis';
import { type NodeProcess, type StartNodeOptions, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const GEOIP = fileURLToPath(new URL('../fixtures/geoip/geosfu-city-test.mmdb', import.meta.url));
const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

interface Route {
  nodeId: string;
  region: string;
  signalUrl: string;
  distanceKm: number | null;
  reason: string;
}

describe('routing across three regions', () => {
  let redis: RedisServer;
  let directory: NodeProcess;
  const nodes = new Map<string, NodeProcess>();
  const started: NodeProcess[] = [];

  const clusterEnv = () => ({
    REDIS_URL: redis.url,
    SFU_GEOIP_DB: GEOIP,
    SFU_TRUST_PROXY: '127.0.0.1',
    SFU_DEFAULT_REGION: 'ams',
    SFU_REGISTRY_TTL_MS: String(TTL_MS),
    SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
  });
  const start = async (options: StartNodeOptions) => {
    const p = await startNode({ ...options, env: clusterEnv() });
    started.push(p);
    return p;
  };
  const listed = async (): Promise<string[]> => {
    const res = await fetch(`${directory.url}/v1/nodes`);
    const body = (await res.json()) as { nodes: { id: string; state: string }[] };
    return body.nodes.map((n) => n.id).sort();
  };
  const route = async (
    base: string,
    options: { xff?: string; room?: string; query?: string; token?: string } = {},
  ) => {
    const room = options.room ?? 'r1';
    const token = options.token ?? (await tokens.mint({ room, identity: 'router' }));
    const res = await fetch(`${base}/v1/route?room=${room}${options.query ?? ''}`, {
      headers: {
        authorization: `Bearer ${token}`,
        ...(options.xff ? { 'x-forwarded-for': options.xff } : {}),
      },
    });
    return { status: res.status, body: (await res.json()) as Route & { error?: { code: string } } };
  };

  before(async () => {
    redis = await startRedis();
    directory = await start({ role: 'directory' });
    for (const region of ['ams', 'sin', 'hcm'])
      nodes.set(region, await start({ region, nodeId: `node-${region}` }));
    await waitUntil('three nodes registered', async () =>
      (await listed()).length === 3 ? true : undefined,
    );
  });
  after(async () => {
    await Promise.allSettled(started.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  test('callers are routed to the nearest region, by any node and by the directory', async () => {
    const cases: [string, string][] = [
      ['198.51.100.10', 'ams'], // Amsterdam
      ['198.51.100.70', 'sin'], // Singapore
      ['198.51.100.130', 'hcm'], // Ho Chi Minh City
      ['198.51.100.200', 'hcm'], // Hanoi: HCM is 1 140 km away, Singapore 2 200 km
      ['203.0.113.10', 'ams'], // Frankfurt
      ['203.0.113.70', 'ams'], // US East: Amsterdam is nearer than Asia
      ['203.0.113.140', 'sin'], // Sydney
      ['2001:db8:2::1', 'sin'], // Singapore, IPv6
    ];
    const entries = [directory.url, ...[...nodes.values()].map((n) => n.url)];
    for (const [ip, region] of cases) {
      for (const base of entries) {
        const { status, body } = await route(base, { xff: ip });
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.region, region, `${ip} via ${base}`);
        assert.equal(body.reason, 'nearest');
        assert.equal(body.signalUrl, `${nodes.get(region)?.url.replace('http', 'ws')}/v1/signal`);
      }
    }
    const local = await route(directory.url);
    assert.equal(local.body.region, 'ams', 'loopback callers get the default region');
    assert.equal(local.body.reason, 'default-region');
  });

  test('pins need the canPinRegion grant', async () => {
    const denied = await route(directory.url, { query: '&region=hcm' });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error?.code, 'PERMISSION_DENIED');
    const token = await tokens.mint({
      room: 'r1',
      identity: 'lab',
      grants: { canPinRegion: true },
    });
    const pinned = await route(directory.url, {
      query: '&region=hcm',
      token,
      xff: '198.51.100.10',
    });
    assert.equal(pinned.body.region, 'hcm');
    assert.equal(pinned.body.reason, 'pinned-region');
    const byNode = await route(directory.url, { query: '&node=node-sin', token });
    assert.equal(byNode.body.nodeId, 'node-sin');
    const unknown = await route(directory.url, { query: '&region=syd', token });
    assert.equal(unknown.status, 503);
    assert.equal(unknown.body.error?.code, 'NO_NODE_AVAILABLE');
  });

  test('a drained node is skipped, and SIGTERM removes a node at once', async () => {
    const admin = await tokens.mint({ room: 'ops', identity: 'ops', grants: { admin: true } });
    const sin = nodes.get('sin');
    assert.ok(sin);
    const denied = await fetch(`${sin.url}/v1/admin/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await tokens.mint({ room: 'r', identity: 'x' })}` },
    });
    assert.equal(denied.status, 403, 'draining needs the admin grant');
    const res = await fetch(`${sin.url}/v1/admin/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(res.status, 202);
    const rerouted = await waitUntil('Singapore callers rerouted', async () => {
      const { body } = await route(directory.url, { xff: '198.51.100.70' });
      return body.region !== 'sin' ? body : undefined;
    });
    assert.equal(rerouted.region, 'hcm', 'the next nearest node takes Singapore');
    assert.equal(await sin.exited, 0, 'a drained node exits cleanly');
    nodes.delete('sin');

    const hcm = nodes.get('hcm');
    assert.ok(hcm);
    const t0 = Date.now();
    await hcm.stop('SIGTERM');
    await waitUntil('hcm gone', async () =>
      (await listed()).includes('node-hcm') ? undefined : true,
    );
    const gone = Date.now() - t0;
    console.log(
      `SIGTERM: node gone from the directory ${gone} ms after the signal (TTL ${TTL_MS} ms)`,
    );
    assert.ok(gone < TTL_MS, `deregistered at once, not by expiry (${gone} ms)`);
    nodes.delete('hcm');
  });

  test('a SIGKILLed node disappears within TTL + one heartbeat', async () => {
    const fra = await start({ region: 'fra', nodeId: 'node-fra' });
    await waitUntil('fra registered', async () =>
      (await listed()).includes('node-fra') ? true : undefined,
    );
    const t0 = Date.now();
    await fra.stop('SIGKILL');
    await waitUntil(
      'fra expired',
      async () => ((await listed()).includes('node-fra') ? undefined : true),
      20_000,
    );
    const gone = Date.now() - t0;
    console.log(
      `SIGKILL: node gone ${gone} ms after the kill (TTL ${TTL_MS} ms + heartbeat ${HEARTBEAT_MS} ms)`,
    );
    // At least most of a TTL (its last heartbeat may have been up to one heartbeat before the
    // kill), at most TTL + one heartbeat, with a margin for this VM's stalls.
    assert.ok(gone >= TTL_MS - HEARTBEAT_MS - 100, `not before the TTL (${gone} ms)`);
    assert.ok(gone <= TTL_MS + HEARTBEAT_MS + 1_500, `within TTL + heartbeat (${gone} ms)`);
  });

  test('after Redis restarts empty, every live node is back within a heartbeat or two', async () => {
    const live = [...nodes.values()].map((n) => n.nodeId).sort();
    assert.deepEqual(live, ['node-ams']);
    const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.restart();
    const t0 = Date.now();
    try {
      await probe.connect();
      await waitUntil(
        're-registration',
        async () => ((await probe.keys('sfu:node:*')).length === live.length ? true : undefined),
        10_000,
      );
    } finally {
      probe.disconnect();
    }
    const back = Date.now() - t0;
    console.log(
      `Redis restart: nodes re-registered ${back} ms after it came back (heartbeat ${HEARTBEAT_MS} ms)`,
    );
    assert.ok(back <= 2 * HEARTBEAT_MS + 1_500, `re-registered in ${back} ms`);
    // The directory's view of the registry comes back through its own re-read: awaited.
    await waitUntil('the directory to route to node-ams again', async () => {
      const { body } = await route(directory.url, { xff: '198.51.100.10' });
      return body.nodeId === 'node-ams' ? true : undefined;
    });
  });
});
