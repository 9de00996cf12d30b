/**
 * The relay bus's dispatch (requests, replies, retries, the answer cache, rejections,
 * close) on the in-process hub: the same code as RedisRelayBus, without the network.
 * test/integration/relay-bus.test.ts runs the Redis one against a real redis-server.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { InvalidStateError, SfuError } from '@geosfu/common';
import { EnvelopeCodec, type RejectReason } from './EnvelopeCodec.js';
import { MemoryRelayBus, MemoryRelayHub } from './MemoryRelayBus.js';
import { videoTrackFixture } from './messages.fixtures.js';
import { MAX_RELAY_MESSAGE_BYTES, type OfferBody } from './messages.js';
import type { RelayRequestHandler } from './RelayBus.js';

const offer: OfferBody = {
  room: 'r1',
  linkId: 'L1',
  sdp: 'v=0\r\noffer\r\n',
  tracks: [videoTrackFixture],
};
const answerTo = (body: OfferBody) => ({
  room: body.room,
  linkId: body.linkId,
  sdp: 'v=0\r\nanswer\r\n',
});
const fast = { timeoutMs: 50, attempts: 3 };

const opened: MemoryRelayBus[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((bus) => bus.close()));
});

async function pair() {
  const hub = new MemoryRelayHub();
  const a = new MemoryRelayBus({ hub, nodeId: 'node-a' });
  const b = new MemoryRelayBus({ hub, nodeId: 'node-b' });
  opened.push(a, b);
  await Promise.all([a.start(), b.start()]);
  return { hub, a, b };
}

function rejections(bus: MemoryRelayBus) {
  const seen: [RejectReason, string | undefined][] = [];
  bus.on('rejected', (reason, from) => seen.push([reason, from]));
  return seen;
}

const hasCode = (code: string) => (error: unknown) => {
  assert.ok(error instanceof SfuError, String(error));
  assert.equal(error.code, code, error.message);
  return true;
};

describe('MemoryRelayBus', () => {
  test('offer and answer between two nodes', async () => {
    const { a, b } = await pair();
    const calls: [string, string, OfferBody][] = [];
    b.onRequest(async (from, type, body) => {
      calls.push([from, type, body]);
      return answerTo(body);
    });
    assert.deepEqual(await a.request('node-b', 'offer', offer), answerTo(offer));
    assert.deepEqual(calls, [['node-a', 'offer', offer]]);
    assert.equal(a.kind, 'memory');
    assert.equal(a.connected, true);
  });

  test("the handler's SfuError code reaches the requester; any other error is INTERNAL", async () => {
    const { a, b } = await pair();
    let fail: Error = new SfuError('INVALID_SDP', 'no m-line 3');
    b.onRequest(async () => {
      throw fail;
    });
    await assert.rejects(a.request('node-b', 'offer', offer), (error: SfuError) => {
      assert.equal(error.code, 'INVALID_SDP');
      assert.match(error.message, /node node-b refused the relay offer: no m-line 3/);
      return true;
    });
    fail = new RangeError('a bug');
    await assert.rejects(a.request('node-b', 'offer', offer), hasCode('INTERNAL'));
  });

  test('a node without a handler answers SERVICE_UNAVAILABLE at once', async () => {
    const { a } = await pair();
    const started = Date.now();
    await assert.rejects(
      a.request('node-b', 'offer', offer, { timeoutMs: 5_000 }),
      hasCode('SERVICE_UNAVAILABLE'),
    );
    assert.ok(Date.now() - started < 1_000);
  });

  test('a node that does not listen: TIMEOUT after every try', async () => {
    const { a, hub } = await pair();
    let sent = 0;
    hub.tap((to) => {
      if (to === 'node-x') sent++;
    });
    const started = Date.now();
    await assert.rejects(a.request('node-x', 'offer', offer, fast), (error: SfuError) => {
      assert.equal(error.code, 'TIMEOUT');
      assert.match(error.message, /3 tries of 50 ms: nothing listens on its channel/);
      return true;
    });
    assert.equal(sent, 3);
    assert.ok(Date.now() - started >= 150);
  });

  test('a retry while the handler runs does not run it again; the answer still arrives', async () => {
    const { a, b, hub } = await pair();
    let offersSent = 0;
    hub.tap((to) => {
      if (to === 'node-b') offersSent++;
    });
    let runs = 0;
    b.onRequest(async (_from, _type, body) => {
      runs++;
      // Past the first try's 50 ms and its back-off (at most 200 ms): a second try goes out.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return answerTo(body);
    });
    assert.deepEqual(await a.request('node-b', 'offer', offer, fast), answerTo(offer));
    assert.equal(runs, 1);
    assert.ok(offersSent >= 2, `${offersSent} tries`);
  });

  test('an answered request reports how many tries it sent (its Redis round trips)', async () => {
    const { a, b } = await pair();
    const answered: [string, number][] = [];
    a.on('requestAnswered', (type, tries) => answered.push([type, tries]));
    let delayMs = 0;
    b.onRequest(async (_from, _type, body) => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return answerTo(body);
    });
    await a.request('node-b', 'offer', offer, fast);
    assert.deepEqual(answered, [['offer', 1]]);
    // Past the first try's 50 ms and its back-off: a second try goes out before the answer.
    delayMs = 300;
    await a.request('node-b', 'offer', { ...offer, linkId: 'L2' }, fast);
    assert.equal(answered.length, 2);
    assert.ok((answered[1]?.[1] ?? 0) >= 2, `the retried request: ${answered[1]?.[1]} tries`);
    // A request nobody answers reports nothing.
    await assert.rejects(
      a.request('node-c', 'offer', offer, { timeoutMs: 20, attempts: 1 }),
      hasCode('TIMEOUT'),
    );
    assert.equal(answered.length, 2);
  });

  test('a retry of an answered request gets the same answer again; an exact replay nothing', async () => {
    const { b, hub } = await pair();
    let runs = 0;
    b.onRequest(async (_from, _type, body) => {
      runs++;
      return { ...answerTo(body), sdp: `v=0\r\nanswer ${runs}\r\n` };
    });
    const seen = rejections(b);
    // Play node-c by hand: its requests, and the replies on its channel.
    const c = new EnvelopeCodec({ nodeId: 'node-c', secret: hub.secret });
    const replies: unknown[] = [];
    hub.tap((to, payload) => {
      if (to === 'node-c') replies.push(JSON.parse(payload));
    });
    const first = c.seal({ type: 'offer', to: 'node-b', body: offer });
    const retry = c.seal(
      { type: 'offer', to: 'node-b', body: offer, id: first.id },
      Date.now() + 1,
    );
    hub.publish('node-b', first.payload);
    await until(() => replies.length === 1);
    hub.publish('node-b', retry.payload);
    await until(() => replies.length === 2);
    hub.publish('node-b', first.payload); // the very same bytes: a replay
    await until(() => seen.length === 1);
    assert.deepEqual(seen, [['duplicate', 'node-c']]);
    assert.equal(runs, 1);
    assert.equal(replies.length, 2);
    const [one, two] = replies as { id: string; replyTo: string; body: unknown }[];
    assert.ok(one && two);
    assert.deepEqual(two.body, one.body, 'the same answer');
    assert.equal(two.replyTo, first.id);
    assert.notEqual(two.id, one.id, 'in a new envelope, so that it is not taken for a replay');
  });

  test('close notices arrive as linkClose', async () => {
    const { a, b } = await pair();
    const got = b.waitFor('linkClose', { timeoutMs: 1_000 });
    await a.send('node-b', 'close', { room: 'r1', linkId: 'L1', reason: 'no-subscribers' });
    assert.deepEqual(await got, ['node-a', { room: 'r1', linkId: 'L1', reason: 'no-subscribers' }]);
  });

  test('layers notices arrive as linkLayers; forged or malformed ones are rejected and counted', async () => {
    const { hub, a, b } = await pair();
    const body = { room: 'r1', linkId: 'L1', tracks: [{ trackId: 'TR_v', layers: [0, 2] }] };
    const got = b.waitFor('linkLayers', { timeoutMs: 1_000 });
    await a.send('node-b', 'layers', body);
    assert.deepEqual(await got, ['node-a', body]);

    const rogue = new MemoryRelayBus({
      hub,
      nodeId: 'node-r',
      secret: 'not-the-cluster-secret-but-long-enough-!!',
    });
    opened.push(rogue);
    await rogue.start();
    let delivered = 0;
    b.on('linkLayers', () => delivered++);
    const forged = b.waitFor('rejected', { timeoutMs: 1_000 });
    await rogue.send('node-b', 'layers', body);
    assert.deepEqual(await forged, ['signature', 'node-r']);
    // Authentic but unreadable: layer indexes out of range, in the wrong order.
    const bad = { ...body, tracks: [{ trackId: 'TR_v', layers: [2, 0, 7] }] };
    const codec = new EnvelopeCodec({ nodeId: 'node-a', secret: hub.secret });
    const malformed = b.waitFor('rejected', { timeoutMs: 1_000 });
    hub.publish('node-b', codec.seal({ type: 'layers', to: 'node-b', body: bad }).payload);
    assert.deepEqual(await malformed, ['malformed', 'node-a']);
    assert.equal(delivered, 0);
    await assert.rejects(a.send('node-b', 'layers', bad), hasCode('INVALID_ARGUMENT'));
  });

  test('a node with another secret is rejected as signature, and its request is not run', async () => {
    const { hub, b } = await pair();
    const rogue = new MemoryRelayBus({
      hub,
      nodeId: 'node-r',
      secret: 'not-the-cluster-secret-but-long-enough-!!',
    });
    opened.push(rogue);
    await rogue.start();
    let runs = 0;
    b.onRequest(async (_f, _t, body) => {
      runs++;
      return answerTo(body);
    });
    const seen = rejections(b);
    await assert.rejects(
      rogue.request('node-b', 'offer', offer, { timeoutMs: 30, attempts: 2 }),
      hasCode('TIMEOUT'),
    );
    assert.deepEqual(seen, [
      ['signature', 'node-r'],
      ['signature', 'node-r'],
    ]);
    assert.equal(runs, 0);
  });

  test('an authentic offer with a bad body gets BAD_MESSAGE at once', async () => {
    const { hub, b } = await pair();
    b.onRequest(async (_f, _t, body) => answerTo(body));
    const c = new EnvelopeCodec({ nodeId: 'node-c', secret: hub.secret });
    const replies: { type: string; body: { code: string } }[] = [];
    hub.tap((to, payload) => {
      if (to === 'node-c') replies.push(JSON.parse(payload));
    });
    const bad = { ...offer, tracks: [{ ...offer.tracks[0], kind: 'smell' }] };
    hub.publish('node-b', c.seal({ type: 'offer', to: 'node-b', body: bad }).payload);
    await until(() => replies.length === 1);
    assert.equal(replies[0]?.type, 'error');
    assert.equal(replies[0]?.body.code, 'BAD_MESSAGE');
  });

  test('an answer for another link is refused on both sides', async () => {
    const { a, b } = await pair();
    b.onRequest(async (_f, _t, body) => ({ ...answerTo(body), linkId: 'other' }));
    await assert.rejects(a.request('node-b', 'offer', offer), hasCode('INTERNAL'));
  });

  test('invalid arguments fail at once, before anything is sent', async () => {
    const { a, hub } = await pair();
    let sent = 0;
    hub.tap(() => sent++);
    const huge = { ...offer, sdp: 'a'.repeat(MAX_RELAY_MESSAGE_BYTES - 100) };
    await assert.rejects(a.request('node-b', 'offer', huge), hasCode('MESSAGE_TOO_LARGE'));
    await assert.rejects(
      a.request('node-b', 'offer', { ...offer, room: '' }),
      hasCode('INVALID_ARGUMENT'),
    );
    await assert.rejects(a.request('node-a', 'offer', offer), hasCode('INVALID_ARGUMENT'));
    await assert.rejects(a.request('bad id', 'offer', offer), hasCode('INVALID_ARGUMENT'));
    await assert.rejects(
      a.request('node-b', 'offer', offer, { timeoutMs: 60_000 }),
      hasCode('INVALID_ARGUMENT'),
    );
    await assert.rejects(
      a.send('node-b', 'close', { room: 'r1', linkId: 'L1', reason: 'Not A Slug' }),
      hasCode('INVALID_ARGUMENT'),
    );
    assert.equal(sent, 0);
  });

  test('one handler at a time; its remover frees the place', async () => {
    const { b } = await pair();
    const handler: RelayRequestHandler = async (_f, _t, body) => answerTo(body);
    const off = b.onRequest(handler);
    assert.throws(() => b.onRequest(handler), InvalidStateError);
    off();
    b.onRequest(handler);
  });

  test('an aborted request rejects with the reason and stops retrying', async () => {
    const { a } = await pair();
    const controller = new AbortController();
    const pending = a.request('node-b', 'offer', offer, {
      timeoutMs: 5_000,
      signal: controller.signal,
    });
    controller.abort(new Error('room emptied'));
    await assert.rejects(pending, /room emptied/);
  });

  test('close: pending requests reject with CLOSED, running handlers are aborted, idempotent', async () => {
    const { a, b } = await pair();
    let handlerSignal: AbortSignal | undefined;
    b.onRequest((_f, _t, _body, signal) => {
      handlerSignal = signal;
      return new Promise(() => {
        // Never settles: closing must not wait for it.
      });
    });
    const pending = a.request('node-b', 'offer', offer, { timeoutMs: 5_000 });
    await until(() => handlerSignal !== undefined);
    const outcome = assert.rejects(pending, hasCode('CLOSED'));
    await Promise.all([a.close(), a.close()]);
    await outcome;
    assert.equal(a.state, 'closed');
    await b.close();
    assert.equal(handlerSignal?.aborted, true);
    assert.ok(handlerSignal?.reason instanceof SfuError);
    await assert.rejects(a.request('node-b', 'offer', offer), InvalidStateError);
    await assert.rejects(a.start(), InvalidStateError);
  });

  test('not started: requests throw InvalidStateError; two buses cannot share a node id', async () => {
    const hub = new MemoryRelayHub();
    const a = new MemoryRelayBus({ hub, nodeId: 'node-a' });
    const twin = new MemoryRelayBus({ hub, nodeId: 'node-a' });
    opened.push(a, twin);
    await assert.rejects(a.request('node-b', 'offer', offer), InvalidStateError);
    await a.start();
    await assert.rejects(twin.start(), hasCode('CONFIG_INVALID'));
  });
});

/** Waits until `check` holds, one macrotask at a time (deliveries are setImmediate). */
async function until(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
