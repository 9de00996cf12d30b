/**
 * Two node processes on one host in one region, as one node per core runs them (own HTTP
 * ports, own RTC port ranges), on a real Redis; callers from that region (GeoIP through
 * X-Forwarded-For). Room affinity: a room's participants all go to the node that hosts it,
 * even once the other is less loaded; a second room goes to the other node; no relay link
 * appears between the two for either room; each process's media sockets stay in its range.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BotPool } from '../helpers/bots.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { devTokens, joinRaw, roomView } from '../helpers/rooms.js';
import { udpPorts } from '../helpers/sockets.js';
import { assertStays, waitUntil } from '../helpers/wait.js';
import type { RawClient } from '../helpers/ws.js';

const GEOIP = fileURLToPath(new URL('../fixtures/geoip/geosfu-city-test.mmdb', import.meta.url));
/** Amsterdam in the fixture database. */
const AMSTERDAM = '198.51.100.10';
const PER_ROOM = 10;
/** Each node's SFU_RTC_PORT_RANGE: 100 ports, the second right after the first. */
const FIRST_PORT = 43_000 + Math.floor(Math.random() * 100) * 200;
const rtcRange = (i: number): [number, number] => [FIRST_PORT + i * 100, FIRST_PORT + i * 100 + 99];

interface Route {
  nodeId: string;
  url: string;
  reason: string;
}

describe('two nodes on one host in one region: room affinity', () => {
  let redis: RedisServer;
  const nodes: NodeProcess[] = [];
  const bots = new BotPool();
  const clients: RawClient[] = [];

  /** `/v1/route` for a caller in Amsterdam, asked of the second node (any node answers). */
  const route = async (room: string, identity: string): Promise<Route> => {
    const token = await devTokens.mint({ room, identity });
    const res = await fetch(`${nodes[1]?.url}/v1/route?room=${room}`, {
      headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': AMSTERDAM },
    });
    assert.equal(res.status, 200);
    return (await res.json()) as Route;
  };
  const byId = (id: string) => {
    const n = nodes.find((p) => p.nodeId === id);
    assert.ok(n, id);
    return n;
  };
  const links = async () => {
    let total = 0;
    for (const n of nodes) total += await metricValue(n.url, 'sfu_relay_links');
    return total;
  };

  before(async () => {
    redis = await startRedis();
    for (const [i, id] of ['ams-1', 'ams-2'].entries()) {
      nodes.push(
        await startNode({
          region: 'ams',
          nodeId: id,
          env: {
            REDIS_URL: redis.url,
            SFU_GEOIP_DB: GEOIP,
            SFU_TRUST_PROXY: '127.0.0.1',
            SFU_REGISTRY_TTL_MS: '3000',
            SFU_REGISTRY_HEARTBEAT_MS: '500',
            SFU_RTC_PORT_RANGE: rtcRange(i).join('-'),
          },
        }),
      );
    }
  });
  after(async () => {
    await bots.closeAll();
    for (const c of clients) c.close();
    await Promise.allSettled(nodes.map((n) => n.stop('SIGKILL')));
    await redis?.stop();
  });

  /**
   * Routes and joins PER_ROOM participants of `room`: a publisher first, a subscriber last
   * (to see media forwarded), raw signalling clients between. Returns the node ids routed to
   * and the reasons given.
   */
  const fill = async (room: string, afterFirst: () => Promise<void>) => {
    const routed: Route[] = [];
    const first = await route(room, `${room}-0`);
    routed.push(first);
    await bots.connect({
      url: first.url,
      route: false,
      room,
      identity: `${room}-0`,
      publish: { video: true, audio: false },
      subscribe: false,
    });
    await afterFirst();
    for (let i = 1; i < PER_ROOM - 1; i++) {
      const r = await route(room, `${room}-${i}`);
      routed.push(r);
      await joinRaw(r.url, room, `${room}-${i}`, clients);
    }
    const last = await route(room, `${room}-last`);
    routed.push(last);
    const sub = await bots.connect({ url: last.url, route: false, room, identity: `${room}-last` });
    await sub.waitForPackets(`${room}-0`, 'video', 30, 20_000);
    return routed;
  };

  test('ten participants of a room share its node; a second room takes the other', async () => {
    const a = await fill('alpha', async () => {
      // Until the registry shows the first node's load, plain routing would pick it too:
      // wait until a new room would go to the other node, so that affinity is what decides.
      await waitUntil('the registry to show the first node loaded', async () =>
        (await route('probe', 'p')).nodeId === 'ams-2' ? true : undefined,
      );
    });
    const home = a[0]?.nodeId;
    assert.equal(home, 'ams-1', 'two idle nodes: the first by id');
    assert.deepEqual(
      a.map((r) => r.nodeId),
      Array(PER_ROOM).fill(home),
      'every participant of alpha on its node',
    );
    assert.ok(
      a.slice(1).every((r) => r.reason === 'room-affinity'),
      `affinity chose against load: ${a.map((r) => r.reason).join(', ')}`,
    );

    const b = await fill('beta', async () => {});
    assert.equal(b[0]?.nodeId, 'ams-2', 'a new room goes to the less loaded node');
    assert.deepEqual(
      b.map((r) => r.nodeId),
      Array(PER_ROOM).fill('ams-2'),
      'every participant of beta on its node',
    );
    for (const [room, node] of [
      ['alpha', 'ams-1'],
      ['beta', 'ams-2'],
    ] as const) {
      const view = await roomView(byId(node).url, room);
      assert.equal(view.length, PER_ROOM, `${room} has all its participants`);
    }
    await assertStays('no relay link on either node', async () => (await links()) === 0, 1_500);
    // Each process's PeerConnections (a publisher and a subscriber each) bound in its range.
    for (const [i, n] of nodes.entries()) {
      const [min, max] = rtcRange(i);
      const ports = udpPorts(n.pid);
      assert.ok(ports.length >= 2, `${n.nodeId} has its media sockets: ${ports.join(', ')}`);
      assert.ok(
        ports.every((p) => p >= min && p <= max),
        `${n.nodeId}'s UDP ports ${ports.join(', ')} lie in ${min}-${max}`,
      );
    }
  });
});
