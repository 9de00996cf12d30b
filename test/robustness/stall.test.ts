/**
 * A stalled node (issue 20, finding 4). After a 15 s SIGSTOP (a long GC pause or a starved VM
 * looks the same) the node ended its live publisher (`peer-connection-failed`, no RTCP) and
 * an observer (`heartbeat-timeout`) the moment it woke: its overdue liveness timers ran before
 * it read the RTCP and pongs waiting in its sockets. Liveness now runs on a clock that skips
 * the time the node was stopped; clients that really died during the stop (one silent on the
 * websocket, one whose media stopped) are still ended.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bot } from '@geosfu/client/bot';
import { DEV_API_KEY, DEV_API_SECRET, type ServerMessage, TokenService } from '@geosfu/common';
import { metricValue } from '../helpers/metrics.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { waitUntil } from '../helpers/wait.js';
import { type RawClient, rawClient } from '../helpers/ws.js';

const PEER_TIMEOUT_MS = 4_000;
const PING_INTERVAL_MS = 500;
const PING_TIMEOUT_MS = 3_000;
/** The stop the probe found harmful: much longer than every liveness timeout. */
const STOP_MS = 15_000;
const ROOM = 'stall';

describe('a node stopped for 15 s', () => {
  let node: NodeProcess;
  let stopped = false;
  const bots: Bot[] = [];
  const clients: RawClient[] = [];
  const tokens = new TokenService(DEV_API_KEY, DEV_API_SECRET);

  const resume = () => {
    if (!stopped) return;
    stopped = false;
    process.kill(node.pid, 'SIGCONT');
  };

  before(async () => {
    node = await startNode({
      args: [
        '--peer-timeout-ms',
        String(PEER_TIMEOUT_MS),
        '--ping-interval-ms',
        String(PING_INTERVAL_MS),
        '--ping-timeout-ms',
        String(PING_TIMEOUT_MS),
      ],
    });
  });
  after(async () => {
    resume(); // also when the test failed while the node was stopped
    for (const c of clients) c.close();
    await Promise.allSettled(bots.map((b) => b.close()));
    await node.stop();
  });

  const join = async (identity: string): Promise<RawClient> => {
    const c = await rawClient(node.url); // answers websocket pings by itself
    clients.push(c);
    // No subscriptions: a subscriber PeerConnection this client never answers would be ended
    // as "never connected", which is not what this test is about.
    const token = await tokens.mint({ room: ROOM, identity });
    c.send({ type: 'join', id: 'j', token, autoSubscribe: false });
    await c.waitFor((m) => m.type === 'joined');
    return c;
  };
  const bot = async (identity: string, publish: boolean) => {
    const b = await Bot.connect({
      url: node.url,
      route: false,
      room: ROOM,
      identity,
      hostAddresses: ['127.0.0.1'],
      ...(publish ? { publish: { video: true, audio: true } } : {}),
    });
    bots.push(b);
    return b;
  };
  const received = (b: Bot) =>
    b.stats().received.find((s) => s.participant === 'publisher' && s.kind === 'video')?.packets ??
    0;

  test('clients that stayed alive are still in the room; those that died are ended', async () => {
    const publisher = await bot('publisher', true);
    const subscriber = await bot('subscriber', false);
    const observer = await join('observer');
    const doomed = await join('doomed');
    const ghost = await bot('ghost', true);
    await subscriber.waitForPackets('publisher', 'video', 20, 15_000);
    const left = (identity: string) => (m: ServerMessage) =>
      m.type === 'participant.left' && m.identity === identity;

    process.kill(node.pid, 'SIGSTOP');
    stopped = true;
    // The doomed client dies during the stop, without closing its socket: it stops reading,
    // so it answers no ping any more (a pulled cable).
    doomed.ws.pause();
    // The ghost's media dies, its websocket lives on: only the RTCP watch can end it.
    await ghost.peerConnections.publisher?.close();
    await sleep(STOP_MS); // the stall itself is the scenario, not a wait for a condition
    resume();
    const resumedAt = Date.now();
    const packetsAtResume = received(subscriber);

    // The dead client is ended once its silence, not counting the stop, passes the timeout.
    // (or the observer itself is ended: the failure this test is about)
    const gone = await observer.waitFor(
      (m) => left('doomed')(m) || m.type === 'leave',
      PING_TIMEOUT_MS + 15_000,
    );
    assert.deepEqual(
      gone.type === 'participant.left' ? gone.reason : gone,
      'heartbeat-timeout',
      'the dead client is ended, the observer is not',
    );
    const doomedAfter = Date.now() - resumedAt;
    const ghostGone = await observer.waitFor(left('ghost'), PEER_TIMEOUT_MS + 15_000);
    console.log(
      `after the resume: silent client ended in ${doomedAfter} ms, dead media in ${Date.now() - resumedAt} ms`,
    );
    assert.equal(
      ghostGone.type === 'participant.left' && ghostGone.reason,
      'peer-connection-failed',
    );

    // The live ones stay: watch past two peer timeouts after the resume, and media flows.
    await subscriber.waitForPackets('publisher', 'video', packetsAtResume + 50, 15_000);
    const watchUntil = resumedAt + 2 * PEER_TIMEOUT_MS + 1_000;
    while (Date.now() < watchUntil) {
      const kicked = observer.messages.find(
        (m) => m.type === 'leave' || left('publisher')(m) || left('subscriber')(m),
      );
      assert.equal(kicked, undefined, `a live client was ended: ${JSON.stringify(kicked)}`);
      assert.equal(publisher.closed || subscriber.closed, false, 'a live bot was ended');
      await sleep(100);
    }
    assert.equal(observer.ws.readyState, observer.ws.OPEN, 'the observer is still connected');
    assert.equal(publisher.closedReason, undefined);
    assert.equal(subscriber.closedReason, undefined);
    await waitUntil('3 participants on the node', async () =>
      (await metricValue(node.url, 'sfu_participants')) === 3 ? true : undefined,
    );
    assert.ok((await metricValue(node.url, 'sfu_stalls_total')) >= 1, 'the stall is counted');
  });
});
