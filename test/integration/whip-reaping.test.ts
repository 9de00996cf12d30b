/**
 * A WHIP publisher is reaped when its PeerConnection dies, as a websocket participant is:
 * GStreamer's webrtcbin publishes, a werift bot in the room sees it join and receives its
 * tracks, then the publisher is killed without a DELETE. Within SFU_PEER_TIMEOUT_MS (2 s here)
 * the node ends the session: the bot sees it leave with reason `peer-connection-failed`, the
 * node counts one participant (the bot), and the session's URL is gone (DELETE: 404).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEV_API_KEY, DEV_API_SECRET, TokenService } from '@geosfu/common';
import { BotPool } from '../helpers/bots.js';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { waitForEqual, waitUntil } from '../helpers/wait.js';
import { startWhipPublisher } from '../helpers/whip-publisher.js';

const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);
const ROOM = 'whip-reaping';

describe('a WHIP publisher whose PeerConnection dies', () => {
  let node: NodeProcess;
  const bots = new BotPool(() => node.url);

  before(async () => {
    node = await startNode({
      args: ['--peer-timeout-ms', '2000', '--ice-servers', '[{"urls":"stun:stun.example.org"}]'],
    });
  });
  after(async () => {
    await bots.closeAll();
    await node.stop();
  });

  test('is reaped, and the room sees it leave', { timeout: 60_000 }, async (t) => {
    const bot = await bots.connect({ room: ROOM, identity: 'watcher', route: false });
    const left: { identity: string; reason: string }[] = [];
    bot.on('participantLeft', (p) => left.push({ identity: p.identity, reason: p.reason }));
    const token = await tokens.mint({ room: ROOM, identity: 'gst' });
    const publisher = startWhipPublisher({ url: `${node.url}/v1/whip/${ROOM}`, token });
    t.after(() => publisher.kill());
    const created = await publisher.waitFor('create its session', (e) => e.event !== 'connection');
    assert.equal(created.event, 'created', JSON.stringify(created));
    await waitUntil('the bot to see gst join', () =>
      bot.participants().some((p) => p.identity === 'gst') ? true : undefined,
    );
    await waitUntil(
      'the bot to receive gst video and audio',
      () => {
        const kinds = new Set(bot.subscribedTracks().map((s) => s.kind));
        return kinds.has('video') && kinds.has('audio') ? true : undefined;
      },
      20_000,
    );
    assert.equal(await metricValue(node.url, 'sfu_participants'), 2);

    publisher.kill(); // SIGKILL: no DELETE, its packets just stop
    await waitUntil(
      'the bot to see gst leave',
      () => left.find((p) => p.identity === 'gst'),
      15_000,
    );
    assert.deepEqual(left, [{ identity: 'gst', reason: 'peer-connection-failed' }]);
    await waitForEqual(
      'the node to count the bot only',
      () => metricValue(node.url, 'sfu_participants'),
      1,
    );
    const gone = await fetch(String(created.location), { method: 'DELETE' });
    assert.equal(gone.status, 404);
  });

  test('the 201 carried the configured ICE server as a Link header', async () => {
    const token = await tokens.mint({ room: ROOM, identity: 'gst2' });
    const publisher = startWhipPublisher({ url: `${node.url}/v1/whip/${ROOM}`, token });
    try {
      const created = await publisher.waitFor(
        'create its session',
        (e) => e.event !== 'connection',
      );
      assert.deepEqual(created.links, ['<stun:stun.example.org>; rel="ice-server"']);
    } finally {
      await publisher.stop();
    }
  });
});
