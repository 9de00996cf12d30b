/**
 * The demo page across a relay link: two nodes, `ams` and `hcm`, share a real Redis registry.
 * Alice's page is pinned (`?region=ams`) to ams, bob's (`?region=hcm`) to hcm, both opened
 * from ams's demo page. Each sees and hears the other, which only a relay link each way can
 * carry (each node counts relayed packets in); each node counts one link out and one in, and
 * both links close once bob leaves.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openBrowser } from '../helpers/browser.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { waitForEqual } from '../helpers/wait.js';
import { receivesFrom, reportOnFailure, until, watchFirstFrame } from './page-view.js';
import { buildDemoPage, waitForRoute } from './setup.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const LINKS_TIMEOUT_MS = 30_000;

/** Polls until A's own /v1/route sends a `region` pin to `peer` (registry membership). */
async function waitForRegion(via: NodeProcess, peer: NodeProcess, room: string): Promise<void> {
  await waitForRoute(
    via,
    room,
    { region: peer.region },
    (response, body) =>
      response.ok && (JSON.parse(body) as { nodeId?: string }).nodeId === peer.nodeId,
    `${via.nodeId} never routed region ${peer.region} to ${peer.nodeId}`,
  );
}

type Links = Record<'ams' | 'hcm', { out: number; in: number }>;

/** `sfu_relay_links{direction}` of both nodes. */
async function relayLinks(nodes: Record<'ams' | 'hcm', NodeProcess>): Promise<Links> {
  const read = async (n: NodeProcess) => ({
    out: await metricValue(n.url, 'sfu_relay_links', { direction: 'out' }),
    in: await metricValue(n.url, 'sfu_relay_links', { direction: 'in' }),
  });
  const [ams, hcm] = await Promise.all([read(nodes.ams), read(nodes.hcm)]);
  return { ams, hcm };
}

/** Polls the links of both nodes until they are `expected`; fails with the last read. */
async function untilLinks(
  nodes: Record<'ams' | 'hcm', NodeProcess>,
  expected: Links,
): Promise<void> {
  await waitForEqual(
    'the relay links each way on both nodes',
    () => relayLinks(nodes),
    expected,
    LINKS_TIMEOUT_MS,
    100,
  );
}

describe('demo page across a relay link', () => {
  let redis: RedisServer;
  let ams: NodeProcess;
  let hcm: NodeProcess;
  const room = `relay-${randomBytes(4).toString('hex')}`;

  before(async () => {
    buildDemoPage();
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      SFU_REGISTRY_TTL_MS: String(TTL_MS),
      SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
      SFU_DEFAULT_REGION: 'ams',
    };
    [ams, hcm] = await Promise.all([
      startNode({ nodeId: 'node-ams', region: 'ams', env }),
      startNode({ nodeId: 'node-hcm', region: 'hcm', env }),
    ]);
  });

  after(async () => {
    await Promise.allSettled([ams?.stop(), hcm?.stop()]);
    await redis?.stop();
  });

  test('pages on two nodes see and hear each other through one link each way', {
    timeout: 120_000,
  }, async (t) => {
    const browser = await openBrowser({ t });
    const markPassed = reportOnFailure(t, browser, [ams, hcm]);
    const nodes = { ams, hcm };
    await waitForRegion(ams, hcm, room);
    assert.deepEqual(await relayLinks(nodes), {
      ams: { out: 0, in: 0 },
      hcm: { out: 0, in: 0 },
    });

    // Both pages come from ams's demo page; the region pin sends bob's to hcm.
    const pageUrl = (name: string, region: string) =>
      `${ams.url}/?${new URLSearchParams({ room, name, autojoin: '1', region })}`;
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    const bobTiming = await watchFirstFrame(bob, 'alice');
    await alice.goto(pageUrl('alice', 'ams'));
    const aliceJoined = await until(alice, 'alice to join on ams', (v) => v.state === 'joined');
    await bob.goto(pageUrl('bob', 'hcm'));
    const bobJoined = await until(bob, 'bob to join on hcm', (v) => v.state === 'joined');

    // 1. Each page is on the node of the region it pinned.
    assert.equal(aliceJoined.nodeId, ams.nodeId);
    assert.equal(aliceJoined.region, 'ams');
    assert.equal(aliceJoined.nodeLabel, `ams · ${ams.nodeId}`);
    assert.equal(bobJoined.nodeId, hcm.nodeId);
    assert.equal(bobJoined.region, 'hcm');
    assert.equal(bobJoined.nodeLabel, `hcm · ${hcm.nodeId}`);

    // 2. Media crosses the relay link both ways: decoded video and received audio.
    await until(bob, 'bob (hcm) to receive alice (ams)', receivesFrom('alice'));
    await until(alice, 'alice (ams) to receive bob (hcm)', receivesFrom('bob'));

    // 3. One link each way: each node sends one and receives one.
    await untilLinks(nodes, { ams: { out: 1, in: 1 }, hcm: { out: 1, in: 1 } });
    // And the media did come in over them, on both nodes.
    for (const n of [ams, hcm]) {
      for (const kind of ['video', 'audio']) {
        const relayed = await metricValue(n.url, 'sfu_packets_total', {
          direction: 'in',
          path: 'relay',
          kind,
        });
        assert.ok(relayed > 0, `${n.nodeId} received no ${kind} packets over the relay`);
      }
    }
    const timing = await bobTiming();
    if (timing.joinedAt !== null && timing.firstFrameAt !== null) {
      console.log(
        `relay e2e: bob (hcm) joined ${timing.joinedAt.toFixed(0)} ms after his page's navigation; first decoded frame of alice's video (ams) ${(timing.firstFrameAt - timing.joinedAt).toFixed(0)} ms after the join`,
      );
    }

    // 4. Bob leaves: nobody is left on hcm, so both links close on both nodes.
    const leftAt = Date.now();
    await bob.click('#leave');
    await until(bob, 'bob to leave', (v) => v.state === 'left');
    await until(alice, 'alice to see bob leave', (v) => !v.participants.includes('bob'));
    await untilLinks(nodes, { ams: { out: 0, in: 0 }, hcm: { out: 0, in: 0 } });
    console.log(`relay e2e: links closed on both nodes ${Date.now() - leftAt} ms after Leave`);
    markPassed();
  });
});
