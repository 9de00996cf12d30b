import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidStateError, type SfuError } from '@geosfu/common';
import { MemoryRoomHub, MemoryRoomStore, REAP_ORIGIN, RoomDraft } from './MemoryRoomStore.js';
import type { RoomEvent, SessionRecord } from './RoomStore.js';

let clock = 1_000;

function session(sessionId: string, identity: string, nodeId = 'node-a'): SessionRecord {
  return {
    sessionId,
    identity,
    name: identity.toUpperCase(),
    nodeId,
    region: nodeId === 'node-a' ? 'ams' : 'sin',
    joinedAt: ++clock,
    tracks: [],
  };
}

const video = { trackId: 'TR_v', kind: 'video', source: 'camera', muted: false } as const;

/** Records every event a store emits, as `type:sessionId[:reason]@origin`. */
function recorder(store: MemoryRoomStore) {
  const seen: { room: string; event: RoomEvent }[] = [];
  store.on('event', (room, event) => seen.push({ room, event }));
  return {
    seen,
    lines: () =>
      seen.map(({ room, event }) => {
        const id = event.type === 'chat' ? event.from.sessionId : event.session.sessionId;
        const reason = event.type === 'left' ? `:${event.reason}` : '';
        return `${room}/${event.type}:${id}${reason}@${event.origin}`;
      }),
  };
}

/** Lets queued event deliveries (queueMicrotask) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const ids = (sessions: SessionRecord[]) => sessions.map((s) => s.sessionId);
const max10 = { maxParticipants: 10 };

function pair() {
  const hub = new MemoryRoomHub();
  return { hub, a: new MemoryRoomStore({ hub }), b: new MemoryRoomStore({ hub }) };
}

describe('MemoryRoomStore', () => {
  test('one session per identity: a join replaces the older one, left(replaced) before joined', async () => {
    const { a, b } = pair();
    await a.watch('r');
    const events = recorder(a);
    const first = await a.join('r', session('s1', 'alice'), max10);
    assert.equal(first.replaced, undefined);
    assert.deepEqual(ids(first.participants), ['s1']);
    await a.join('r', session('s2', 'bob'), max10);

    // The refresh lands on the other node.
    const refreshed = session('s3', 'alice', 'node-b');
    const second = await b.join('r', refreshed, max10);
    assert.equal(second.replaced?.sessionId, 's1');
    assert.deepEqual(ids(second.participants), ['s2', 's3']);
    assert.deepEqual(ids(await a.participants('r')), ['s2', 's3']);

    await settle();
    assert.deepEqual(events.lines(), [
      'r/joined:s1@node-a',
      'r/joined:s2@node-a',
      // origin: the joining node, so that node-a ends its session s1
      'r/left:s1:replaced@node-b',
      'r/joined:s3@node-b',
    ]);
    await Promise.all([a.close(), b.close()]);
  });

  test("leave removes exactly that session: an old session's late leave is a no-op", async () => {
    const { a, b } = pair();
    await b.watch('r');
    const events = recorder(b);
    await a.join('r', session('old', 'alice'), max10);
    await a.join('r', session('other', 'bob'), max10);
    const { replaced } = await a.join('r', session('new', 'alice'), max10);
    assert.equal(replaced?.sessionId, 'old');

    // The old websocket closes after the refresh.
    assert.equal(await a.leave('r', 'old', 'disconnected'), false);
    assert.deepEqual(ids(await b.participants('r')), ['other', 'new']);
    assert.equal(await a.leave('r', 'never-was', 'left'), false);
    assert.equal(await a.leave('other-room', 'new', 'left'), false);

    assert.equal(await a.leave('r', 'new', 'left'), true);
    assert.deepEqual(ids(await b.participants('r')), ['other']);
    assert.equal(await a.leave('r', 'new', 'left'), false, 'twice is a no-op');

    await settle();
    assert.deepEqual(events.lines(), [
      'r/joined:old@node-a',
      'r/joined:other@node-a',
      'r/left:old:replaced@node-a',
      'r/joined:new@node-a',
      'r/left:new:left@node-a',
    ]);
    await Promise.all([a.close(), b.close()]);
  });

  test('the limit counts sessions after replacement; a refused join changes nothing', async () => {
    const { a, b } = pair();
    await a.watch('r');
    const events = recorder(a);
    await a.join('r', session('s1', 'alice'), { maxParticipants: 2 });
    await b.join('r', session('s2', 'bob', 'node-b'), { maxParticipants: 2 });

    // Full: a third identity is refused, with a message that says why.
    await assert.rejects(
      a.join('r', session('s3', 'carol'), { maxParticipants: 2 }),
      (error: SfuError) => {
        assert.equal(error.code, 'ROOM_FULL');
        assert.equal(error.message, 'room r has its maximum of 2 participants');
        return true;
      },
    );
    // A refresh in a full room does not count twice.
    const refresh = await b.join('r', session('s4', 'alice', 'node-b'), { maxParticipants: 2 });
    assert.equal(refresh.replaced?.sessionId, 's1');
    assert.deepEqual(ids(refresh.participants), ['s2', 's4']);

    // Over the limit (it was lowered): a refresh is refused too, and the old session stays.
    await assert.rejects(
      a.join('r', session('s5', 'bob'), { maxParticipants: 1 }),
      (error: SfuError) => error.code === 'ROOM_FULL',
    );
    assert.deepEqual(ids(await a.participants('r')), ['s2', 's4']);

    await settle();
    assert.deepEqual(events.lines(), [
      'r/joined:s1@node-a',
      'r/joined:s2@node-b',
      'r/left:s1:replaced@node-b',
      'r/joined:s4@node-b',
    ]);
    await Promise.all([a.close(), b.close()]);
  });

  test('every successful mutation publishes its event; tracks and chat', async () => {
    const { a, b } = pair();
    await b.watch('r');
    const events = recorder(b);
    const s = session('s1', 'alice');
    await a.join('r', s, max10);
    await a.setTracks('r', 's1', [video]);
    assert.deepEqual((await b.participants('r'))[0]?.tracks, [video]);
    await a.chat('r', {
      type: 'chat',
      origin: 'node-a',
      from: { sessionId: 's1', identity: 'alice', name: 'ALICE' },
      text: 'hello',
      ts: 5,
    });
    await assert.rejects(a.setTracks('r', 'gone', []), (e: SfuError) => e.code === 'NOT_FOUND');
    await a.leave('r', 's1', 'left');
    await settle();
    assert.deepEqual(events.lines(), [
      'r/joined:s1@node-a',
      'r/tracks:s1@node-a',
      'r/chat:s1@node-a',
      'r/left:s1:left@node-a',
    ]);
    const tracks = events.seen[1]?.event;
    assert.ok(tracks?.type === 'tracks');
    assert.deepEqual(tracks.session.tracks, [video]);
    await Promise.all([a.close(), b.close()]);
  });

  test('events: only watched rooms, after the call returns, in order; unwatch stops them', async () => {
    const { a, b } = pair();
    const events = recorder(a);
    await a.watch('r');
    let duringCall = 0;
    a.on('event', () => duringCall++);
    const joined = a.join('r', session('s1', 'alice'), max10);
    assert.equal(duringCall, 0, 'not emitted from inside the call');
    await joined;
    await b.join('elsewhere', session('s2', 'bob', 'node-b'), max10);
    await settle();
    assert.deepEqual(events.lines(), ['r/joined:s1@node-a']);

    // Published before unwatch, delivered after: dropped, as Redis would after UNSUBSCRIBE.
    const late = b.join('r', session('s3', 'carol', 'node-b'), max10);
    await a.unwatch('r');
    await late;
    await b.join('r', session('s4', 'dave', 'node-b'), max10);
    await settle();
    assert.deepEqual(events.lines(), ['r/joined:s1@node-a']);

    // Events are copies: a listener cannot change the store.
    await a.watch('r');
    const got = a.waitFor('event');
    await b.setTracks('r', 's3', [video]);
    const [, event] = await got;
    assert.ok(event.type === 'tracks');
    event.session.tracks.length = 0;
    const participants = await a.participants('r');
    assert.deepEqual(participants.find((s) => s.sessionId === 's3')?.tracks, [video]);
    participants.length = 0;
    (await a.participants('r'))[0]?.tracks.push(video);
    assert.equal((await a.participants('r')).length, 3);
    assert.deepEqual((await a.participants('r'))[0]?.tracks, []);
    await Promise.all([a.close(), b.close()]);
  });

  test('reapNode removes every session of a dead node, once, with reason node-died', async () => {
    const hub = new MemoryRoomHub();
    const [a, b, dead] = [1, 2, 3].map(() => new MemoryRoomStore({ hub })) as [
      MemoryRoomStore,
      MemoryRoomStore,
      MemoryRoomStore,
    ];
    await a.watch('r1');
    await a.watch('r2');
    const events = recorder(a);
    await dead.join('r1', session('d1', 'dan', 'node-c'), max10);
    await dead.join('r1', session('d2', 'eve', 'node-c'), max10);
    await dead.join('r2', session('d3', 'dan', 'node-c'), max10);
    await a.join('r1', session('a1', 'alice'), max10);
    await dead.close(); // crashed: no leave

    const counts = await Promise.all([a.reapNode('node-c'), b.reapNode('node-c')]);
    assert.equal(counts[0] + counts[1], 3, `${counts}`);
    assert.equal(await a.reapNode('node-c'), 0, 'nothing left to do');
    assert.deepEqual(ids(await a.participants('r1')), ['a1']);
    assert.deepEqual(ids(await a.participants('r2')), []);
    await settle();
    const left = events.lines().filter((l) => l.includes('/left:'));
    assert.deepEqual(left.sort(), [
      `r1/left:d1:node-died@${REAP_ORIGIN}`,
      `r1/left:d2:node-died@${REAP_ORIGIN}`,
      `r2/left:d3:node-died@${REAP_ORIGIN}`,
    ]);
    await Promise.all([a.close(), b.close()]);
  });

  test('reassert makes the store match the live sessions exactly', async () => {
    const { a, b } = pair();
    await b.watch('r1');
    await b.watch('r2');
    await b.watch('r3');
    const events = recorder(b);
    const kept = session('a1', 'alice');
    const ended = session('a2', 'amy');
    const elsewhere = session('a3', 'ann');
    await a.join('r1', kept, max10);
    await a.join('r1', ended, max10);
    await a.join('r2', elsewhere, max10);
    await b.join('r1', session('b1', 'bob', 'node-b'), max10);
    // During the outage: a2 ended, a1 published a track, a4 joined locally, r2 emptied;
    // "carol" was older on node-b and is on node-a now; "dora" refreshed onto node-b.
    const carolOld = session('b2', 'carol', 'node-b');
    await b.join('r3', carolOld, max10);
    const doraLocal = session('a5', 'dora');
    const doraNewer = session('b3', 'dora', 'node-b');
    await b.join('r3', doraNewer, max10);
    const carolNew = session('a6', 'carol');
    const added = session('a4', 'abe');
    await settle();
    events.seen.length = 0;

    await a.reassert(
      'node-a',
      new Map([
        ['r1', [{ ...kept, tracks: [video] }, added]],
        ['r3', [doraLocal, carolNew]],
      ]),
    );
    assert.deepEqual(ids(await b.participants('r1')), ['a1', 'b1', 'a4']);
    assert.deepEqual((await b.participants('r1'))[0]?.tracks, [video]);
    assert.deepEqual(ids(await b.participants('r2')), []);
    assert.deepEqual(ids(await b.participants('r3')), ['b3', 'a6']);
    await settle();
    assert.deepEqual(events.lines(), [
      'r1/left:a2:disconnected@node-a',
      'r1/tracks:a1@node-a',
      'r1/joined:a4@node-a',
      // dora's live session lost to her newer one: node-a is told (origin node-b) to end it
      'r3/left:a5:replaced@node-b',
      'r3/left:b2:replaced@node-a',
      'r3/joined:a6@node-a',
      'r2/left:a3:disconnected@node-a',
    ]);

    // Idempotent: a second reassert with the same view changes nothing.
    events.seen.length = 0;
    await a.reassert('node-a', new Map([['r1', [{ ...kept, tracks: [video] }, added]]]));
    await settle();
    assert.deepEqual(events.lines(), ['r3/left:a6:disconnected@node-a']);

    await assert.rejects(
      a.reassert('node-a', new Map([['r1', [session('x', 'xavier', 'node-b')]]])),
      (e: SfuError) => e.code === 'INVALID_ARGUMENT',
    );
    await Promise.all([a.close(), b.close()]);
  });

  test('bad arguments are refused with INVALID_ARGUMENT before anything changes', async () => {
    const { a } = pair();
    const bad = (e: SfuError) => e.code === 'INVALID_ARGUMENT';
    await assert.rejects(a.join('', session('s1', 'alice'), max10), bad);
    await assert.rejects(a.join('x'.repeat(129), session('s1', 'alice'), max10), bad);
    await assert.rejects(a.join('r', { ...session('s1', 'alice'), nodeId: 'a:b' }, max10), bad);
    await assert.rejects(a.join('r', { ...session('s1', 'alice'), identity: '' }, max10), bad);
    await assert.rejects(a.join('r', session('s1', 'alice'), { maxParticipants: 0 }), bad);
    await assert.rejects(a.join('r', session('s1', 'alice'), { maxParticipants: 1.5 }), bad);
    const tooMany = Array.from({ length: 9 }, (_, i) => ({ ...video, trackId: `T${i}` }));
    await a.join('r', session('s1', 'alice'), max10);
    await assert.rejects(a.setTracks('r', 's1', tooMany), bad);
    await assert.rejects(
      a.join('r', { ...session('s1', 'mallory') }, max10),
      (e: SfuError) =>
        e.code === 'INVALID_ARGUMENT' && /session ids must be unique/.test(e.message),
    );
    assert.deepEqual(ids(await a.participants('r')), ['s1']);
    await a.close();
  });

  test('close: idempotent, later calls throw InvalidStateError, no events after it', async () => {
    const { a, b } = pair();
    await a.watch('r');
    let events = 0;
    a.on('event', () => events++);
    const joined = b.join('r', session('s1', 'alice', 'node-b'), max10);
    await a.close(); // the join's event is still queued: not delivered after close
    await joined;
    await a.close();
    await settle();
    assert.equal(events, 0);
    assert.equal(a.connected, false);
    await assert.rejects(a.join('r', session('s2', 'bob'), max10), InvalidStateError);
    await assert.rejects(a.participants('r'), InvalidStateError);
    await assert.rejects(a.watch('r'), InvalidStateError);
    await a.unwatch('r'); // harmless
    assert.deepEqual(ids(await b.participants('r')), ['s1'], 'the hub lives on');
    await b.close();
  });
});

describe('RoomDraft', () => {
  test('a retried join of the same session id updates it without replacing it', () => {
    const s = session('s1', 'alice');
    const draft = new RoomDraft('r', [s]);
    const result = draft.join({ ...s, name: 'Alice 2' }, 1);
    assert.equal(result.replaced, undefined);
    assert.deepEqual(draft.changes().removed, []);
    assert.equal(draft.changes().put[0]?.name, 'Alice 2');
    assert.deepEqual(
      draft.events.map((e) => e.type),
      ['joined'],
    );
  });

  test('damaged data with two sessions of one identity: a join replaces both', () => {
    const old1 = session('s1', 'alice');
    const old2 = session('s2', 'alice', 'node-b');
    const draft = new RoomDraft('r', [old2, old1]);
    const result = draft.join(session('s3', 'alice'), 10);
    assert.equal(result.replaced?.sessionId, 's2', 'the newest one');
    assert.deepEqual(draft.changes().removed.sort(), ['s1', 's2']);
    assert.deepEqual([...draft.touchedNodes].sort(), ['node-a', 'node-b']);
    assert.equal(draft.hasNode('node-b'), false);
  });
});

describe('what a store tells only itself: rooms opened, emptied and reaped', () => {
  test('the store whose change opened, emptied or reaped a room says so, once; rooms() lists rooms with sessions', async () => {
    const hub = new MemoryRoomHub();
    const a = new MemoryRoomStore({ hub });
    const b = new MemoryRoomStore({ hub });
    const seen: string[] = [];
    for (const [name, store] of [
      ['a', a],
      ['b', b],
    ] as const) {
      store.on('opened', (room) => seen.push(`${name}:opened:${room}`));
      store.on('emptied', (room) => seen.push(`${name}:emptied:${room}`));
      store.on('reaped', (room, s) => seen.push(`${name}:reaped:${room}:${s.identity}`));
    }
    await a.join('r', session('PA_1', 'ann'), { maxParticipants: 10 });
    await b.join('r', session('PA_2', 'bob', 'node-b'), { maxParticipants: 10 });
    assert.deepEqual(await b.rooms(), ['r']);
    await a.leave('r', 'PA_1', 'left');
    await a.reapNode('node-b');
    await settle();
    assert.deepEqual(seen, ['a:opened:r', 'a:reaped:r:bob', 'a:emptied:r']);
    assert.deepEqual(await a.rooms(), []);
    await a.close();
    await b.close();
  });
});

test('updateSession changes a name or metadata, publishes the record, and refuses a gone session', async () => {
  const store = new MemoryRoomStore();
  const events = recorder(store);
  await store.watch('r');
  await store.join('r', session('PA_u', 'una'), { maxParticipants: 10 });
  await store.updateSession('r', 'PA_u', { name: 'Una B', metadata: 'm' });
  await settle();
  const [stored] = await store.participants('r');
  assert.deepEqual([stored?.name, stored?.metadata], ['Una B', 'm']);
  assert.deepEqual(events.lines().slice(-1), ['r/tracks:PA_u@node-a']);
  await assert.rejects(
    store.updateSession('r', 'PA_gone', { name: 'x' }),
    (e: SfuError) => e.code === 'NOT_FOUND',
  );
  await store.close();
});
