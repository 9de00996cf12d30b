/**
 * The relay bus against a real redis-server, two buses playing nodes A and B: offer and
 * answer, coded errors, timeouts after every retry, retries that do not run a handler
 * twice, forged and replayed messages published straight onto a node's channel, oversized
 * messages, and a Redis restart.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { RedisConnection, SfuError } from '@geosfu/common';
import {
  EnvelopeCodec,
  MAX_RELAY_MESSAGE_BYTES,
  type OfferBody,
  RedisRelayBus,
  type RejectReason,
  relayChannel,
} from '@geosfu/relay';
import { Redis } from 'ioredis';
import { adminClient, type RedisServer, startRedis, stopSuiteRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const SECRET = 'integration-test-cluster-secret-0123456789';
const WRONG_SECRET = 'some-other-secret-that-is-long-enough-0123';

let prefixCounter = 0;
const newPrefix = () => `t${process.pid}-relay-${++prefixCounter}:`;

/** An offer whose SDP is about 30 KB: 60 m-lines' worth of candidates. */
function bigOffer(linkId = 'L1'): OfferBody {
  const lines: string[] = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0'];
  const tracks: OfferBody['tracks'] = [];
  for (let mid = 0; mid < 60; mid++) {
    const video = mid % 2 === 0;
    lines.push(
      `m=${video ? 'video' : 'audio'} 9 UDP/TLS/RTP/SAVPF ${video ? 96 : 111}`,
      `a=mid:${mid}`,
      'a=sendonly',
      `a=rtpmap:${video ? '96 VP8/90000' : '111 opus/48000/2'}`,
      `a=candidate:1 1 udp 2130706431 10.0.0.${mid} ${40_000 + mid} typ host`,
      `a=candidate:2 1 udp 1694498815 203.0.113.${mid} ${40_000 + mid} typ srflx raddr 0.0.0.0 rport 0`,
      `a=ssrc:${1_000_000 + mid} cname:relay-${'x'.repeat(200)}`,
    );
    tracks.push({
      mid: String(mid),
      trackId: `TR_${mid}`,
      participantSid: `S${Math.floor(mid / 2)}`,
      identity: `user-${Math.floor(mid / 2)}`,
      kind: video ? 'video' : 'audio',
      source: video ? 'camera' : 'microphone',
      codec: video
        ? { mimeType: 'video/VP8', clockRate: 90_000 }
        : { mimeType: 'audio/opus', clockRate: 48_000, channels: 2, parameters: 'useinbandfec=1' },
    });
  }
  return { room: 'room-1', linkId, sdp: `${lines.join('\r\n')}\r\n`, tracks };
}

const answerTo = (body: OfferBody, tag = 'answer') => ({
  room: body.room,
  linkId: body.linkId,
  sdp: `v=0\r\ns=${tag}\r\n`,
});

const hasCode = (code: string) => (error: unknown) => {
  assert.ok(error instanceof SfuError, String(error));
  assert.equal(error.code, code, error.message);
  return true;
};

/** Makes `bus` answer every offer; `runs` counts how often its handler ran. */
function answerEveryOffer(bus: RedisRelayBus): { runs: number } {
  const handled = { runs: 0 };
  bus.onRequest(async (_f, _t, body) => {
    handled.runs++;
    return answerTo(body);
  });
  return handled;
}

/** Resolves with the next `rejected` of `bus`; fails after `timeoutMs`. */
function nextRejection(bus: RedisRelayBus, timeoutMs = 5_000) {
  return bus.waitFor('rejected', { timeoutMs }) as Promise<[RejectReason, string | undefined]>;
}

describe('RedisRelayBus against a real Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  /** Buses and raw connections of the running test, closed after it. */
  const opened: { close(): Promise<unknown> }[] = [];

  const open = async (nodeId: string, prefix: string, secret = SECRET) => {
    const connection = new RedisConnection({ url: redis.url });
    const bus = new RedisRelayBus({ redis: connection, nodeId, secret, keyPrefix: prefix });
    // The bus first, then the connection it uses (whoever creates it closes it).
    opened.push({ close: () => bus.close().then(() => connection.close()) });
    await bus.start();
    return bus;
  };

  /** node-a and node-b on a fresh key prefix. */
  const openPair = async () => {
    const prefix = newPrefix();
    return { prefix, a: await open('node-a', prefix), b: await open('node-b', prefix) };
  };

  /** A raw subscriber on a node's channel: sees what is published there, answers nothing. */
  const spy = async (channel: string) => {
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => {
      // Only a test spy; the assertions say what went wrong.
    });
    opened.push({ close: async () => client.disconnect() });
    await client.connect();
    const seen: string[] = [];
    const waiters = new Set<() => void>();
    client.on('message', (_channel: string, message: string) => {
      seen.push(message);
      for (const w of [...waiters]) w();
    });
    await client.subscribe(channel);
    return {
      seen,
      /** Resolves when `count` messages have arrived. */
      until(count: number, timeoutMs = 5_000): Promise<void> {
        return new Promise((resolve, reject) => {
          const check = () => {
            if (seen.length < count) return false;
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
            return true;
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`${seen.length} of ${count} messages within ${timeoutMs} ms`));
          }, timeoutMs);
          if (!check()) waiters.add(check);
        });
      },
    };
  };

  before(async () => {
    redis = await startRedis();
    admin = await adminClient(redis);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close()));
  });
  after(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close()));
    await stopSuiteRedis(redis, admin);
  });

  test('a relay set-up is two Redis round trips: the offer and the answer, one PUBLISH each', async () => {
    const { a, b } = await openPair();
    answerEveryOffer(b);
    const answered: [string, number][] = [];
    a.on('requestAnswered', (type, tries) => answered.push([type, tries]));
    const monitor = await admin.monitor();
    opened.push({ close: async () => monitor.disconnect() });
    const publishes: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (String(args[0]).toLowerCase() === 'publish') publishes.push(String(args[1]));
    });
    await a.request('node-b', 'offer', bigOffer('RT1'));
    assert.deepEqual(answered, [['offer', 1]], 'one try, answered');
    await waitUntil('MONITOR saw both PUBLISHes', () => publishes.length >= 2 || undefined, 5_000);
    assert.deepEqual(publishes, [b.channel, a.channel], 'the offer to B, then the answer to A');
  });

  test('two nodes exchange a 30 KB offer and its answer', async () => {
    const { prefix, a, b } = await openPair();
    assert.equal(b.channel, `${prefix}relay:node-b`);
    assert.equal(a.connected && b.connected, true);
    const offer = bigOffer();
    assert.ok(offer.sdp.length > 25_000, `SDP of ${offer.sdp.length} characters`);
    const got: [string, string, OfferBody][] = [];
    b.onRequest(async (from, type, body) => {
      got.push([from, type, body]);
      return answerTo(body);
    });
    assert.deepEqual(await a.request('node-b', 'offer', offer), answerTo(offer));
    assert.deepEqual(got, [['node-a', 'offer', offer]]);

    // And the other way, with a close notice from B to A.
    a.onRequest(async (_from, _type, body) => answerTo(body, 'from-a'));
    assert.deepEqual(
      await b.request('node-a', 'offer', bigOffer('L2')),
      answerTo(bigOffer('L2'), 'from-a'),
    );
    const closed = a.waitFor('linkClose', { timeoutMs: 5_000 });
    await b.send('node-a', 'close', { room: 'room-1', linkId: 'L2', reason: 'no-subscribers' });
    assert.deepEqual(await closed, [
      'node-b',
      { room: 'room-1', linkId: 'L2', reason: 'no-subscribers' },
    ]);
  });

  test("the handler's SfuError INVALID_SDP reaches the requester with its code", async () => {
    const { a, b } = await openPair();
    b.onRequest(async () => {
      throw new SfuError('INVALID_SDP', 'm-line 3 has no codec we relay');
    });
    const started = Date.now();
    await assert.rejects(a.request('node-b', 'offer', bigOffer()), (error: SfuError) => {
      assert.equal(error.code, 'INVALID_SDP');
      assert.match(error.message, /node-b refused the relay offer: m-line 3 has no codec/);
      return true;
    });
    assert.ok(Date.now() - started < 2_000, 'an error reply comes at once, no retries');
  });

  test('a node that does not answer: TIMEOUT after every try, in about the sum of timeouts', async () => {
    const prefix = newPrefix();
    const a = await open('node-a', prefix);
    // Something listens on node-s's channel (so the tries are seen) but never answers.
    const silent = await spy(relayChannel('node-s', prefix));
    const timeoutMs = 300;
    const attempts = 3;
    const started = Date.now();
    await assert.rejects(
      a.request('node-s', 'offer', bigOffer(), { timeoutMs, attempts }),
      (error: SfuError) => {
        assert.equal(error.code, 'TIMEOUT');
        assert.match(
          error.message,
          /node-s did not answer the relay offer within 3 tries of 300 ms/,
        );
        return true;
      },
    );
    const elapsed = Date.now() - started;
    // Three deadlines, plus two back-offs of 100..200 and 200..400 ms.
    assert.ok(elapsed >= attempts * timeoutMs, `gave up after ${elapsed} ms`);
    assert.ok(elapsed < attempts * timeoutMs + 600 + 1_500, `gave up after ${elapsed} ms`);
    assert.equal(silent.seen.length, 3, 'three tries');
    const ids = silent.seen.map((m) => (JSON.parse(m) as { id: string }).id);
    assert.equal(new Set(ids).size, 1, 'every try carries the request id');
    const sigs = silent.seen.map((m) => (JSON.parse(m) as { sig: string }).sig);
    assert.equal(new Set(sigs).size, 3, 'each try is signed anew (fresh timestamp)');

    // Nobody at all on the channel: the error says so.
    await assert.rejects(
      a.request('node-z', 'offer', bigOffer(), { timeoutMs: 50, attempts: 1 }),
      /nothing listens on its channel/,
    );
  });

  test('a retry does not run the handler twice: slow first answer, then cached answers', async () => {
    const { prefix, a, b } = await openPair();
    const onB = await spy(b.channel);
    let runs = 0;
    b.onRequest(async (_from, _type, body) => {
      runs++;
      // Beyond the first try's 300 ms and its back-off (at most 200 ms): the second try
      // goes out while this still runs, and this answer settles the request.
      if (runs === 1) await new Promise((resolve) => setTimeout(resolve, 700));
      return answerTo(body, `run-${runs}`);
    });
    const answer = await a.request('node-b', 'offer', bigOffer(), { timeoutMs: 300, attempts: 3 });
    assert.deepEqual(answer, answerTo(bigOffer(), 'run-1'));
    assert.equal(runs, 1, 'the handler ran once');
    assert.ok(onB.seen.length >= 2, `${onB.seen.length} tries reached node-b`);

    // A retry of a request that was already answered gets the same answer again: play a
    // node C by hand (its offer on B's channel, its replies on its own).
    const c = new EnvelopeCodec({ nodeId: 'node-c', secret: SECRET });
    const onC = await spy(relayChannel('node-c', prefix));
    const first = c.seal({ type: 'offer', to: 'node-b', body: bigOffer('L9') });
    await admin.publish(b.channel, first.payload);
    await onC.until(1);
    const retry = c.seal({ type: 'offer', to: 'node-b', body: bigOffer('L9'), id: first.id });
    await admin.publish(b.channel, retry.payload);
    await onC.until(2);
    assert.equal(runs, 2, 'one more run, for the new request only');
    const [one, two] = onC.seen.map((m) => JSON.parse(m) as { replyTo: string; body: unknown });
    assert.deepEqual(two?.body, one?.body, 'the same answer');
    assert.deepEqual(one?.body, answerTo(bigOffer('L9'), 'run-2'));
    assert.equal(two?.replyTo, first.id);
  });

  test('forged, replayed, garbage and oversized messages on B’s channel are rejected and counted', async () => {
    const { a, b } = await openPair();
    const handled = answerEveryOffer(b);
    const counts = new Map<RejectReason, number>();
    b.on('rejected', (reason) => counts.set(reason, (counts.get(reason) ?? 0) + 1));

    // A raw PUBLISH of an offer that claims to come from node-a, signed with another secret.
    const forger = new EnvelopeCodec({ nodeId: 'node-a', secret: WRONG_SECRET });
    let next = nextRejection(b);
    await admin.publish(
      b.channel,
      forger.seal({ type: 'offer', to: 'node-b', body: bigOffer() }).payload,
    );
    assert.deepEqual(await next, ['signature', 'node-a']);

    // A genuine message, captured on the channel and published again: a replay.
    const onB = await spy(b.channel);
    const closed = b.waitFor('linkClose', { timeoutMs: 5_000 });
    await a.send('node-b', 'close', { room: 'room-1', linkId: 'L1', reason: 'node-draining' });
    await closed;
    await onB.until(1);
    next = nextRejection(b);
    await admin.publish(b.channel, onB.seen[0] ?? '');
    assert.deepEqual(await next, ['duplicate', 'node-a']);

    // The same genuine message with its body changed.
    next = nextRejection(b);
    const tampered = JSON.parse(onB.seen[0] ?? '{}') as { id: string; body: { reason: string } };
    tampered.id = 'T'.repeat(22);
    tampered.body.reason = 'forged';
    await admin.publish(b.channel, JSON.stringify(tampered));
    assert.deepEqual(await next, ['signature', 'node-a']);

    next = nextRejection(b);
    await admin.publish(b.channel, 'not json at all');
    assert.deepEqual(await next, ['malformed', undefined]);

    next = nextRejection(b);
    await admin.publish(b.channel, `{"pad":"${'x'.repeat(MAX_RELAY_MESSAGE_BYTES)}"}`);
    assert.deepEqual(await next, ['malformed', undefined]);

    next = nextRejection(b);
    const misrouted = new EnvelopeCodec({ nodeId: 'node-a', secret: SECRET }).seal({
      type: 'close',
      to: 'node-c',
      body: { room: 'room-1', linkId: 'L1', reason: 'no-subscribers' },
    });
    await admin.publish(b.channel, misrouted.payload);
    assert.deepEqual(await next, ['wrong-recipient', 'node-a']);

    assert.deepEqual(Object.fromEntries(counts), {
      signature: 2,
      duplicate: 1,
      malformed: 2,
      'wrong-recipient': 1,
    });
    assert.equal(handled.runs, 0, 'no forged request ran');
    // B still works.
    assert.deepEqual(await a.request('node-b', 'offer', bigOffer()), answerTo(bigOffer()));
  });

  test('layers notices: a genuine one arrives as linkLayers; forged and replayed ones are rejected and counted', async () => {
    const { a, b } = await openPair();
    const body = { room: 'room-1', linkId: 'L1', tracks: [{ trackId: 'TR_v', layers: [0, 2] }] };
    const delivered: unknown[] = [];
    b.on('linkLayers', (from, got) => delivered.push([from, got]));
    const onB = await spy(b.channel);
    const got = b.waitFor('linkLayers', { timeoutMs: 5_000 });
    await a.send('node-b', 'layers', body);
    assert.deepEqual(await got, ['node-a', body]);
    await onB.until(1);

    let next = nextRejection(b);
    await admin.publish(b.channel, onB.seen[0] ?? '');
    assert.deepEqual(await next, ['duplicate', 'node-a']);

    // A neighbour on Redis asking node-b's links for every layer of the track.
    next = nextRejection(b);
    const forger = new EnvelopeCodec({ nodeId: 'node-a', secret: WRONG_SECRET });
    const greedy = { ...body, tracks: [{ trackId: 'TR_v', layers: [0, 1, 2] }] };
    await admin.publish(
      b.channel,
      forger.seal({ type: 'layers', to: 'node-b', body: greedy }).payload,
    );
    assert.deepEqual(await next, ['signature', 'node-a']);
    assert.deepEqual(delivered, [['node-a', body]]);
  });

  test('a message over 256 KB is refused before it is sent', async () => {
    const prefix = newPrefix();
    const a = await open('node-a', prefix);
    const onB = await spy(relayChannel('node-b', prefix));
    const offer = bigOffer();
    // The SDP alone fits; with the track map and the envelope, the message does not.
    offer.sdp += `a=x-pad:${'p'.repeat(MAX_RELAY_MESSAGE_BYTES - offer.sdp.length - 100)}\r\n`;
    await assert.rejects(a.request('node-b', 'offer', offer), (error: SfuError) => {
      assert.equal(error.code, 'MESSAGE_TOO_LARGE');
      assert.match(error.message, /over the 262144-byte limit/);
      return true;
    });
    assert.equal(await admin.publish(relayChannel('node-b', prefix), 'ping'), 1);
    await onB.until(1);
    assert.deepEqual(onB.seen, ['ping'], 'nothing else was published');
  });

  test('Redis restarts: both buses subscribe again and relay works again', async () => {
    const { a, b } = await openPair();
    b.onRequest(async (_f, _t, body) => answerTo(body));
    assert.deepEqual(await a.request('node-b', 'offer', bigOffer()), answerTo(bigOffer()));

    const back = Promise.all([
      a.waitFor('reconnected', { timeoutMs: 20_000 }),
      b.waitFor('reconnected', { timeoutMs: 20_000 }),
    ]);
    await redis.restart();
    await back;
    assert.ok(a.connected && b.connected);
    assert.deepEqual(await a.request('node-b', 'offer', bigOffer('L2')), answerTo(bigOffer('L2')));
    const closed = a.waitFor('linkClose', { timeoutMs: 5_000 });
    await b.send('node-a', 'close', { room: 'room-1', linkId: 'L2', reason: 'no-subscribers' });
    await closed;
  });

  test('Redis hangs: the PUBLISH times out, a later try goes through, the handler runs once', async () => {
    const { a, b } = await openPair();
    const handled = answerEveryOffer(b);
    const publishFailed = a.waitFor('redisError', { timeoutMs: 10_000 });
    redis.pause();
    let answer: Promise<unknown>;
    try {
      answer = a.request('node-b', 'offer', bigOffer(), { timeoutMs: 500, attempts: 4 });
      assert.equal((await publishFailed)[0], 'request');
    } finally {
      redis.resume();
    }
    // The timed-out PUBLISH was written before the freeze ended, so Redis delivers it late,
    // next to the retry: the same request twice, run once.
    assert.deepEqual(await answer, answerTo(bigOffer()));
    assert.equal(handled.runs, 1);
  });

  test('close is idempotent and rejects pending requests with CLOSED', async () => {
    const prefix = newPrefix();
    const a = await open('node-a', prefix);
    await spy(relayChannel('node-s', prefix));
    const pending = a.request('node-s', 'offer', bigOffer(), { timeoutMs: 5_000 });
    const outcome = assert.rejects(pending, hasCode('CLOSED'));
    await Promise.all([a.close(), a.close()]);
    await outcome;
    assert.equal(a.state, 'closed');
    assert.equal(a.connected, false);
  });
});
