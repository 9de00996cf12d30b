/**
 * Simulcast ingest through one node with real werift bots on loopback: a `--simulcast`
 * publisher's three layers are each kept by the node (per-layer counters), a PLI reaches the
 * layer it names, a subscriber gets one layer on one SSRC, dynacast pauses the layers nobody
 * needs at the publisher and resumes them when someone does, bad layer declarations get
 * coded errors, and the publisher's `stats` reply shows its simulcast video.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BOT_SIMULCAST_LAYERS,
  type Bot,
  type SentLayerStats,
  simulcastOffer,
} from '@geosfu/client/bot';
import { DEV_API_KEY, DEV_API_SECRET, type ServerMessage, TokenService } from '@geosfu/common';
import { RTCPeerConnection } from 'werift';
import { BotPool } from '../helpers/bots.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { assertStays, waitUntil } from '../helpers/wait.js';
import { type RawClient, rawClient } from '../helpers/ws.js';

const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

/** The publisher bot's per-layer sent counters, lowest first. */
function sentLayers(bot: Bot): SentLayerStats[] {
  const video = bot.stats().sent.find((s) => s.kind === 'video');
  assert.ok(video?.layers, 'the bot sends simulcast');
  return video.layers;
}

const layerPacketsIn = (node: NodeProcess, layer: number) =>
  metricValue(node.url, 'sfu_simulcast_layer_packets_total', { layer: String(layer) });

/** Waits until the node counted `more` further packets on each of `layers`. */
async function layersGrow(node: NodeProcess, layers: number[], more = 20): Promise<void> {
  const start = await Promise.all(layers.map((l) => layerPacketsIn(node, l)));
  await waitUntil(`packets on layers ${layers} at the node`, async () => {
    const now = await Promise.all(layers.map((l) => layerPacketsIn(node, l)));
    return now.every((n, i) => n >= (start[i] ?? 0) + more) ? true : undefined;
  });
}

describe('simulcast ingest', () => {
  let node: NodeProcess;
  const bots = new BotPool(() => node.url);
  const clients: RawClient[] = [];
  const pcs: RTCPeerConnection[] = [];

  before(async () => {
    node = await startNode();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.allSettled(pcs.map((pc) => pc.close()));
    await bots.closeAll();
    await node.stop();
  });

  test('the node keeps each layer, a PLI reaches its layer, a subscriber gets layer 0 on one SSRC', async () => {
    // No periodic keyframes: after the first, only PLIs make them.
    const pub = await bots.connect({
      room: 'layers',
      identity: 'pub',
      publish: { video: true, audio: true, simulcast: true, keyframeIntervalMs: 600_000 },
      subscribe: false,
    });
    const sub = await bots.connect({ room: 'layers', identity: 'sub' });
    // A subscriber that never declared a demand keeps every layer: all three flow.
    await layersGrow(node, [0, 1, 2]);
    // The subscriber shows the video small: it gets layer 0 (layer selection, h/egress).
    const trackId = await waitUntil(
      'the subscriber receives the video',
      () => sub.subscribedTracks().find((t) => t.kind === 'video')?.trackId,
    );
    const log = sub.recordRtp(trackId);
    assert.ok(log);
    await sub.updateSubscription(trackId, { visible: true, width: 320, height: 180 });
    await waitUntil('layer q', () =>
      sub.subscriptionLayer(trackId)?.rid === 'q' ? true : undefined,
    );
    const fromQ = log.length;

    // The subscriber's switch asked layer q (on its own SSRC) for a keyframe; a subscriber
    // asks only for the layer it gets, not for every layer.
    await waitUntil(
      'a PLI and a keyframe on layer q',
      () => {
        const [layerQ] = sentLayers(pub);
        return layerQ && layerQ.plisReceived >= 1 && layerQ.keyframes >= 2 ? true : undefined;
      },
      15_000,
      50,
      () => JSON.stringify(sentLayers(pub)),
    );

    // The subscriber receives layer 0 only (one SSRC, nothing mixed in) and its keyframes.
    await sub.waitForPackets('pub', 'video', fromQ + 60, 15_000);
    await sub.waitForKeyframe('pub', 'video', 15_000);
    const received = sub
      .stats()
      .received.find((r) => r.participant === 'pub' && r.kind === 'video');
    const [q, h, f] = sentLayers(pub);
    assert.ok(received && q && h && f);
    assert.ok(received.ssrc !== null);
    assert.equal(received.duplicates, 0);
    // It may have started on the top layer before its settings came: from q's first keyframe
    // on, every keyframe it gets is q's.
    const firstQ = log.keyframeSizes.findIndex((k) => k.width === 320 && k.height === 180);
    assert.ok(firstQ >= 0, 'a keyframe of q');
    for (const size of log.keyframeSizes.slice(firstQ))
      assert.deepEqual(size, { width: 320, height: 180 }, 'only q is forwarded');
    assert.ok(f.packets > 3 * q.packets, 'the top layer is the big one');

    // A subscriber's PLI goes to the layer it receives (0), not to the others.
    const before = sentLayers(pub).map((l) => l.plisReceived);
    assert.ok(await sub.requestKeyframe('pub', 'video'));
    await waitUntil('the PLI at layer q', () =>
      (sentLayers(pub)[0]?.plisReceived ?? 0) > (before[0] ?? 0) ? true : undefined,
    );
    await assertStays(
      'no PLI on layers h and f',
      () =>
        sentLayers(pub)
          .slice(1)
          .every((l, i) => l.plisReceived === before[i + 1]),
      1_000,
    );
  });

  test('dynacast: layers nobody needs pause at the publisher and resume when someone joins', async () => {
    // The per-layer counters are the node's: the previous test's publisher must be gone.
    await bots.closeAll();
    const requested: string[][] = [];
    const pub = await bots.connect({
      room: 'dynacast',
      identity: 'pub',
      publish: { video: true, audio: false, simulcast: true, keyframeIntervalMs: 600_000 },
      subscribe: false,
    });
    pub.on('layersRequested', (_trackId, rids) => requested.push(rids));
    // Nobody subscribes: after the debounce only the lowest layer is asked for.
    await waitUntil('publication.layers [q]', () =>
      requested.some((r) => r.join() === 'q') ? true : undefined,
    );
    await waitUntil('the bot paused h and f', () =>
      sentLayers(pub)
        .map((l) => l.sending)
        .join() === 'true,false,false'
        ? true
        : undefined,
    );
    assert.equal(await metricValue(node.url, 'sfu_simulcast_paused_layers'), 2);
    const paused = sentLayers(pub).map((l) => l.packets);
    const pausedAtNode = await Promise.all([1, 2].map((l) => layerPacketsIn(node, l)));
    await layersGrow(node, [0]);
    assert.deepEqual(
      sentLayers(pub)
        .map((l) => l.packets)
        .slice(1),
      paused.slice(1),
      'h and f send nothing while paused',
    );
    assert.deepEqual(
      await Promise.all([1, 2].map((l) => layerPacketsIn(node, l))),
      pausedAtNode,
      'and the node receives nothing on them',
    );

    // A subscriber (it declares no demand: it needs every layer) resumes them at once.
    const keyframesBefore = sentLayers(pub).map((l) => l.keyframes);
    await bots.connect({ room: 'dynacast', identity: 'sub' });
    await waitUntil('publication.layers [q,h,f]', () =>
      requested.at(-1)?.join() === 'q,h,f' ? true : undefined,
    );
    await layersGrow(node, [1, 2]);
    const resumed = sentLayers(pub);
    assert.ok(
      resumed.slice(1).every((l, i) => l.keyframes > (keyframesBefore[i + 1] ?? 0)),
      'a resumed layer starts with a keyframe',
    );
    await waitUntil('no paused layer', async () =>
      (await metricValue(node.url, 'sfu_simulcast_paused_layers')) === 0 ? true : undefined,
    );
  });

  test('dynacast from demand: a subscriber showing the video small pauses the top layers at the publisher', async () => {
    await bots.closeAll(); // the per-layer counters are the node's
    const requested: string[][] = [];
    const pub = await bots.connect({
      room: 'demand',
      identity: 'pub',
      publish: { video: true, audio: false, simulcast: true, keyframeIntervalMs: 600_000 },
      subscribe: false,
    });
    pub.on('layersRequested', (_trackId, rids) => requested.push(rids));
    const sub = await bots.connect({ room: 'demand', identity: 'sub' });
    const trackId = await waitUntil(
      'the subscriber receives the video',
      () => sub.subscribedTracks().find((t) => t.kind === 'video')?.trackId,
    );
    await sub.updateSubscription(trackId, { visible: true, width: 320, height: 180 });
    // Its allocator now demands layer 0 only: after the debounce h and f pause at the bot.
    await waitUntil('publication.layers [q]', () =>
      requested.at(-1)?.join() === 'q' ? true : undefined,
    );
    await waitUntil('the bot paused h and f', () =>
      sentLayers(pub)
        .map((l) => l.sending)
        .join() === 'true,false,false'
        ? true
        : undefined,
    );
    const paused = sentLayers(pub).map((l) => l.packets);
    await layersGrow(node, [0]);
    assert.deepEqual(
      sentLayers(pub)
        .map((l) => l.packets)
        .slice(1),
      paused.slice(1),
      'h and f send nothing while nobody needs them',
    );
    // Shown large again: the top layer resumes at once and the subscriber gets it.
    await sub.updateSubscription(trackId, { visible: true, width: 1280, height: 720 });
    await waitUntil('publication.layers [q,h,f]', () =>
      requested.at(-1)?.join() === 'q,h,f' ? true : undefined,
    );
    await waitUntil('the subscriber on layer f', () =>
      sub.subscriptionLayer(trackId)?.rid === 'f' ? true : undefined,
    );
  });

  test('bad layer declarations get coded errors and the session goes on', async () => {
    const c = await rawClient(node.url);
    clients.push(c);
    c.send({
      type: 'join',
      id: 'j',
      token: await tokens.mint({ room: 'bad', identity: 'mallory' }),
    });
    await c.waitFor((m) => m.type === 'joined');
    // A real werift offer, made simulcast the way the bot does it.
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceStunGatherTimeout: 0 });
    pcs.push(pc);
    const video = pc.addTransceiver('video', { direction: 'sendonly' });
    const audio = pc.addTransceiver('audio', { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const videoMid = video.mid ?? '';
    const audioMid = audio.mid ?? '';
    const sdp = simulcastOffer(pc.localDescription?.sdp ?? '', videoMid, ['q', 'h', 'f']);
    const layers = [...BOT_SIMULCAST_LAYERS];
    const error = (ref: string) => (m: ServerMessage) => m.type === 'error' && m.ref === ref;
    const publish = (id: string, tracks: object[]) => c.send({ type: 'publish', id, sdp, tracks });

    publish('mismatch', [
      {
        mid: videoMid,
        kind: 'video',
        source: 'camera',
        layers: [layers[0], { ...layers[1], rid: 'x' }, layers[2]],
      },
    ]);
    const mismatch = await c.waitFor(error('mismatch'));
    assert.equal(mismatch.type === 'error' && mismatch.code, 'INVALID_SDP');
    assert.match(
      mismatch.type === 'error' ? mismatch.message : '',
      /declared but not in the offer: x; in the offer but not declared: h/,
    );

    publish('undescribed', [{ mid: videoMid, kind: 'video', source: 'camera' }]);
    const undescribed = await c.waitFor(error('undescribed'));
    assert.equal(undescribed.type === 'error' && undescribed.code, 'INVALID_SDP');
    assert.match(undescribed.type === 'error' ? undescribed.message : '', /describe the layers/);

    publish('audio', [
      { mid: videoMid, kind: 'video', source: 'camera', layers },
      { mid: audioMid, kind: 'audio', source: 'microphone', layers },
    ]);
    const onAudio = await c.waitFor(error('audio'));
    assert.equal(onAudio.type === 'error' && onAudio.code, 'BAD_REQUEST');
    assert.match(
      onAudio.type === 'error' ? onAudio.message : '',
      /only a video track has simulcast layers/,
    );

    c.send({ type: 'chat', id: 'still', text: 'still here' });
    await c.waitFor((m) => m.type === 'ok' && m.ref === 'still');
  });

  test("a simulcast publisher's stats reply has its video once, with every layer's packets", async () => {
    const pub = await bots.connect({
      room: 'stats',
      identity: 'pub',
      publish: { video: true, audio: true, simulcast: true },
      subscribe: false,
    });
    // A subscriber needs every layer (no demand declared): all three flow.
    const sub = await bots.connect({ room: 'stats', identity: 'sub' });
    const trackOf = (kind: 'audio' | 'video') =>
      waitUntil(`the subscriber receives the ${kind}`, () =>
        sub.subscribedTracks().find((t) => t.kind === kind && t.identity === 'pub'),
      );
    const video = (await trackOf('video')).trackId;
    const audio = (await trackOf('audio')).trackId;
    const inbound = async () => {
      const reply = await pub.signal.request({ type: 'stats' }, 'stats');
      return { reply, streams: reply.streams.filter((s) => s.direction === 'inbound') };
    };
    const first = await waitUntil('inbound video packets in the stats reply', async () => {
      const { reply, streams } = await inbound();
      const mine = streams.find((s) => s.trackId === video);
      return mine && mine.packets > 0 ? { reply, streams, mine } : undefined;
    });
    // One inbound stream per publication, each under its own track id: nothing unnamed, no
    // video counted as another m-line's.
    assert.deepEqual(
      first.streams.map((s) => `${s.kind}:${s.trackId}`).sort(),
      [`audio:${audio}`, `video:${video}`].sort(),
      JSON.stringify(first.reply),
    );
    assert.ok(first.mine.bytes > first.mine.packets, JSON.stringify(first.mine));
    // Later replies count on: the node's own counts of every layer.
    const later = await waitUntil(
      'the video counters grow',
      async () => {
        const now = (await inbound()).streams.find((s) => s.trackId === video);
        return now && now.packets > first.mine.packets && now.bytes > first.mine.bytes
          ? now
          : undefined;
      },
      15_000,
      250,
    );
    console.log(
      `stats reply, simulcast video in: ${JSON.stringify(first.mine)} then ${JSON.stringify(later)}`,
    );
  });
});
