/**
 * Acceptance of issue 14 across a relay link: the same scenario as shaped-subscriber.test.ts
 * (shaped-room.ts), with the shaped subscriber S on a second node. Two nodes, `ams` and `hcm`,
 * share a real Redis; the publisher P and the unconstrained subscriber U (Chromium in the root
 * namespace) join ams (`?region=ams`), S (Chromium inside the shaped namespace) joins hcm
 * (`?region=hcm`). hcm receives P's and U's videos over a relay link carrying the layers its
 * subscribers asked for, and S's allocator selects among those as for a local publisher.
 *
 * Both nodes listen and gather on the root end of the veth (the only address the namespace
 * reaches), on ports of their own; the relay link between them stays in the root namespace
 * (local traffic), so only S's downlink is shaped.
 */
import { after, before, describe, test } from 'node:test';
import { reportOnFailure } from '../e2e/page-view.js';
import { buildDemoPage, waitForRoute } from '../e2e/setup.js';
import { runShapedRoom, SHAPED_KBIT } from '../e2e/shaped-room.js';
import { openBrowser } from '../helpers/browser.js';
import { createShapedNamespace, type ShapedNamespace } from '../helpers/netns.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;

describe('a shaped subscriber on another node, behind a relay link', () => {
  let net: ShapedNamespace;
  let redis: RedisServer;
  const nodes: NodeProcess[] = [];

  const start = async (region: string): Promise<NodeProcess> => {
    const port = await freePort();
    const node = await startNode({
      nodeId: `node-${region}`,
      region,
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
        SFU_DEFAULT_REGION: 'ams',
      },
      args: net.nodeArgs(port),
    });
    nodes.push(node);
    return node;
  };

  before(async () => {
    buildDemoPage();
    net = await createShapedNamespace({ rateKbit: SHAPED_KBIT });
    redis = await startRedis();
  });

  after(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
    await net?.close();
  });

  test('S on hcm decodes every video at 12 fps under the shaper, U gets 640 px, S recovers the top layer', {
    timeout: 300_000,
  }, async (t) => {
    const ams = await start('ams');
    const hcm = await start('hcm');
    // Registry membership reaches each node after a heartbeat: ams must know hcm's region
    // and the other way round before the region pins route there.
    for (const [via, peer] of [
      [ams, hcm],
      [hcm, ams],
    ] as const) {
      await waitForRoute(
        via,
        'probe-room',
        { region: peer.region },
        (response, body) =>
          response.ok && (JSON.parse(body) as { nodeId?: string }).nodeId === peer.nodeId,
        `${via.nodeId} never routed region ${peer.region} to ${peer.nodeId}`,
      );
    }
    const amsOrigin = new URL(ams.url).origin;
    const hcmOrigin = new URL(hcm.url).origin;
    const browsers = {
      root: await openBrowser({ t, extraArgs: net.chromiumArgs(amsOrigin) }),
      shaped: await openBrowser({
        t,
        executablePath: net.chromiumPath,
        extraArgs: net.chromiumArgs(hcmOrigin),
      }),
    };
    const markPassed = reportOnFailure(
      t,
      {
        get logs() {
          return Object.values(browsers).flatMap((b) => b.logs);
        },
      },
      [ams, hcm],
    );
    const at = (origin: string, region: string) => (q: URLSearchParams) => {
      q.set('region', region);
      return `${origin}/?${q}`;
    };
    await runShapedRoom((line) => t.diagnostic(line), {
      browsers,
      net,
      urls: { p: at(amsOrigin, 'ams'), u: at(amsOrigin, 'ams'), s: at(hcmOrigin, 'hcm') },
      nodes: { p: ams.nodeId, u: ams.nodeId, s: hcm.nodeId },
    });
    markPassed();
  });
});
