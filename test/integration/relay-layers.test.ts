/**
 * A relay link carries the simulcast layers that the far node's subscribers need, and only
 * those: a `--simulcast` bot publishes on node ams, a bot on node hcm subscribes through the
 * relay and pins its video low, then high, then hides it. On ams, the layer m-lines of the
 * link count their packets (`sfu_relay_layer_packets_total{layer}`): a layer nobody on hcm
 * asked for stays still, the one asked for flows. Real redis-server, two node processes,
 * werift bots on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Bot, SubscriptionLayerInfo } from '@geosfu/client/bot';
import { BotPool } from '../helpers/bots.js';
import { metricValue, sampleSum } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { assertStays, waitForEqual, waitUntil } from '../helpers/wait.js';

const TTL_MS = 3_000;
const HEARTBEAT_MS = 750;
const ROOM = 'relay-layers';
/** A layer dropped from the far node's demand is still carried this long (RelayDemand). */
const LINGER_MS = 3_000;
/** How long "nothing flows" is watched: more than a keyframe interval and a demand refresh. */
const STILL_MS = 3_000;

/** Packets sent on ams's relay link, per layer index, read from one scrape. */
async function layerPackets(node: NodeProcess): Promise<number[]> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return [0, 1, 2].map((layer) =>
    sampleSum(text, 'sfu_relay_layer_packets_total', { layer: String(layer) }),
  );
}

describe('a relay link carries the layers the far node asked for, and only those', () => {
  let redis: RedisServer;
  let ams: NodeProcess;
  let hcm: NodeProcess;
  const processes: NodeProcess[] = [];
  const bots = new BotPool();

  const start = async (region: string) => {
    const p = await startNode({
      region,
      nodeId: `node-${region}`,
      env: {
        REDIS_URL: redis.url,
        SFU_REGISTRY_TTL_MS: String(TTL_MS),
        SFU_REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
        SFU_DEFAULT_REGION: 'ams',
      },
    });
    processes.push(p);
    return p;
  };

  before(async () => {
    redis = await startRedis();
    ams = await start('ams');
    hcm = await start('hcm');
  });
  after(async () => {
    await bots.closeAll();
    await Promise.allSettled(processes.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  const carried = () => metricValue(ams.url, 'sfu_relay_layers_carried');
  const carriedSettles = (n: number) =>
    waitForEqual(`ams's relay link to carry ${n} layer(s)`, carried, n, LINGER_MS + 10_000);
  /** Layers `still` send nothing on the link for STILL_MS while each of `flowing` grows. */
  const onlyFlowing = async (flowing: number[], still: number[]) => {
    const at = await layerPackets(ams);
    await assertStays(
      `layers ${still} still on the relay link`,
      async () => {
        const now = await layerPackets(ams);
        return still.every((l) => now[l] === at[l]);
      },
      STILL_MS,
    );
    const now = await layerPackets(ams);
    console.log(
      `relay layer packets over ${STILL_MS} ms: ${at.map((n, l) => `L${l} +${(now[l] ?? 0) - n}`).join(', ')}`,
    );
    for (const l of flowing)
      assert.ok((now[l] ?? 0) > (at[l] ?? 0) + 20, `layer ${l} flows: ${at[l]} -> ${now[l]}`);
    return now;
  };

  test('pinned low: layer 0 only; pinned high: the top layer; hidden: nothing', async () => {
    await bots.connect({
      url: ams.url,
      region: 'ams',
      room: ROOM,
      identity: 'pub',
      publish: { video: true, simulcast: true },
      subscribe: false,
    });
    const sub: Bot = await bots.connect({
      url: hcm.url,
      region: 'hcm',
      room: ROOM,
      identity: 'sub',
    });
    const trackId = await waitUntil(
      'the subscriber on hcm receives the video',
      () => sub.subscribedTracks().find((t) => t.kind === 'video')?.trackId,
      20_000,
    );
    const layers: SubscriptionLayerInfo[] = [];
    sub.on('subscriptionLayer', (id, layer) => {
      if (id === trackId) layers.push(layer);
    });
    const on = (rid: string | null) =>
      waitUntil(`the subscriber announced on ${rid}`, () =>
        layers.at(-1)?.rid === rid ? true : undefined,
      );

    // Pinned low: hcm asks for layer 0 alone; ams carries nothing else on the link.
    await sub.updateSubscription(trackId, { visible: true, width: 1280, height: 720, pin: 'low' });
    await on('q');
    await carriedSettles(1);
    const low = await onlyFlowing([0], [1, 2]);
    // The publisher itself pauses what nobody in the cluster needs (its dynacast counts
    // the relay's demand like a local subscriber's).
    await waitUntil('ams pauses the publisher layers above 0', async () =>
      (await metricValue(ams.url, 'sfu_simulcast_paused_layers')) === 2 ? true : undefined,
    );

    // Pinned high: the top layer starts flowing on the link, the subscriber gets it.
    await sub.updateSubscription(trackId, { visible: true, width: 1280, height: 720, pin: 'high' });
    await waitUntil(
      'layer 2 on the relay link',
      async () => ((await layerPackets(ams))[2] ?? 0) > (low[2] ?? 0) + 20 || undefined,
      10_000,
    );
    await on('f');
    assert.equal(layers.at(-1)?.width, 1280);
    const packets = sub.stats().received.find((r) => r.participant === 'pub' && r.kind === 'video');
    const before = packets?.packets ?? 0;
    await waitUntil('the top layer reaches the subscriber', () => {
      const now = sub.stats().received.find((r) => r.participant === 'pub' && r.kind === 'video');
      return (now?.packets ?? 0) > before + 50 || undefined;
    });
    // Once layer 0 has lingered out, the link carries the top layer alone.
    await carriedSettles(1);
    await onlyFlowing([2], [0, 1]);

    // Hidden: hcm needs nothing; the link stays (the subscriber is still in the room) and
    // carries no layer at all.
    await sub.updateSubscription(trackId, { visible: false, width: 1280, height: 720 });
    await on(null);
    await carriedSettles(0);
    await onlyFlowing([], [0, 1, 2]);
  });
});
