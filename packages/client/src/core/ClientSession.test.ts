/**
 * The client core at the protocol level: a scripted signalling peer (FakeSocket) and a
 * recording PeerDriver stand in for the node and the PeerConnections, so the order of what the
 * core does (queue, candidates, roster, drain) is observable exactly. The bot's and the page's
 * end-to-end behaviour is covered by test/integration and test/e2e.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type {
  IceCandidate,
  ParticipantInfo,
  PeerTarget,
  ServerMessage,
  SubscribedTrack,
} from '@geosfu/common/protocol';
import { type ClientEvents, ClientSession } from './ClientSession.js';
import type { DriverContext, PeerDriver } from './PeerDriver.js';
import type { WebSocketLike } from './SignalClient.js';

type Sent = { type: string; id?: string; [field: string]: unknown };

/** A websocket whose "server" is the test: it opens at once and records what the client sends. */
class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly sent: Sent[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string | { toString(): string } }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  /** Called for every frame the client sends (the scripted server's hook). */
  onSend: (message: Sent) => void = () => {};

  constructor() {
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.(undefined);
    });
  }

  send(data: string): void {
    const message = JSON.parse(data) as Sent;
    this.sent.push(message);
    this.onSend(message);
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }

  deliver(message: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  types(): string[] {
    return this.sent.filter((m) => m.type !== 'ping').map((m) => m.type);
  }
}

function participant(sessionId: string, identity = sessionId): ParticipantInfo {
  return {
    sessionId,
    identity,
    name: identity,
    joinedAt: 1,
    nodeId: 'n1',
    region: 'ams',
    tracks: [],
  };
}

function joinedMessage(
  ref: string | undefined,
  others: ParticipantInfo[] = [],
): Extract<ServerMessage, { type: 'joined' }> {
  return {
    type: 'joined',
    ...(ref === undefined ? {} : { ref }),
    sessionId: 'PA_self',
    room: 'r',
    nodeId: 'n1',
    region: 'ams',
    participant: participant('PA_self', 'me'),
    participants: [participant('PA_self', 'me'), ...others],
    iceServers: [],
    grants: { canPublish: true, canSubscribe: true },
    pingIntervalMs: 60_000,
    pingTimeoutMs: 120_000,
  };
}

const candidate = (n: number): IceCandidate => ({
  candidate: `candidate:${n} 1 udp 1 127.0.0.1 ${10_000 + n} typ host`,
  sdpMid: '0',
  sdpMLineIndex: 0,
});

function offer(sdp: string, tracks: SubscribedTrack[] = []): ServerMessage {
  return { type: 'subscriber.offer', sdp, tracks };
}

/** Records every call in `log`; `gate` (when set) holds applySubscriberOffer until resolved. */
class RecordingDriver implements PeerDriver {
  readonly log: string[] = [];
  gate: Promise<void> | undefined;
  closed = false;

  constructor(readonly context: DriverContext) {}

  async applySubscriberOffer(sdp: string): Promise<void> {
    this.log.push(`apply ${sdp}`);
    await this.gate;
    this.log.push(`applied ${sdp}`);
  }

  async answerSubscriber(): Promise<string> {
    this.log.push('answer');
    return `answer-${this.log.filter((l) => l === 'answer').length}`;
  }

  async addRemoteCandidate(target: PeerTarget, c: IceCandidate | null): Promise<void> {
    this.log.push(`candidate ${target} ${c?.candidate.split(' ')[0] ?? 'end'}`);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

interface Harness {
  session: ClientSession<RecordingDriver>;
  socket: () => FakeSocket;
  /** The client's `join` request, once sent. */
  joinRequest: () => Sent | undefined;
  driver: () => RecordingDriver;
  /** Events in the order they were emitted, as "name arg0". */
  events: string[];
}

const open: ClientSession<RecordingDriver>[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** A session whose websockets are FakeSockets and whose driver records. */
function harness(): Harness {
  let socket: FakeSocket | undefined;
  let driver: RecordingDriver | undefined;
  const session = new ClientSession({
    webSocket: () => {
      socket = new FakeSocket();
      return socket;
    },
    driver: (context) => {
      driver = new RecordingDriver(context);
      return driver;
    },
    onListenerError: (event, error) => {
      throw new Error(`listener of ${event} threw`, { cause: error });
    },
  });
  open.push(session);
  const events: string[] = [];
  const names: (keyof ClientEvents)[] = [
    'participantJoined',
    'participantLeft',
    'trackPublished',
    'trackUnpublished',
    'trackMuted',
    'subscribed',
    'leave',
    'disconnected',
    'serverError',
  ];
  for (const name of names) {
    session.on(name, (...args: unknown[]) => {
      const first = args[0] as { sessionId?: string } | string | unknown[] | undefined;
      const label =
        typeof first === 'string'
          ? first
          : Array.isArray(first)
            ? `${first.length}`
            : ((first as { sessionId?: string } | undefined)?.sessionId ?? '');
      events.push(`${name} ${label}`.trim());
    });
  }
  return {
    session,
    events,
    joinRequest: () => socket?.sent.find((m) => m.type === 'join'),
    socket: () => {
      assert.ok(socket, 'no socket yet');
      return socket;
    },
    driver: () => {
      assert.ok(driver, 'no driver yet');
      return driver;
    },
  };
}

/** Connects (straight to the fake node, with a token) and answers `join` at once. */
async function joined(h: Harness, others: ParticipantInfo[] = []): Promise<void> {
  const connecting = h.session.connect({ url: 'ws://node.test', route: false, token: 't' });
  await until(() => h.joinRequest() !== undefined);
  h.socket().deliver(joinedMessage(h.joinRequest()?.id, others));
  await connecting;
}

/** Lets queued promise work run until `condition` holds (the fakes never wait on timers). */
async function until(condition: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never reached: ${what}`);
}

describe('ClientSession', () => {
  test('subscriber offers wait for the join, then run one at a time in order', async () => {
    const h = harness();
    const connecting = h.session.connect({ url: 'ws://node.test', route: false, token: 't' });
    await until(() => h.joinRequest() !== undefined);
    // An offer that overtakes the `joined` answer waits for it.
    h.socket().deliver(offer('offer-1'));
    h.socket().deliver(joinedMessage(h.joinRequest()?.id));
    await connecting;
    await until(() => h.socket().types().includes('subscriber.answer'), 'the early offer answered');
    let release!: () => void;
    h.driver().gate = new Promise((resolve) => {
      release = resolve;
    });
    h.socket().deliver(offer('offer-2'));
    h.socket().deliver(offer('offer-3'));
    await until(() => h.driver().log.includes('apply offer-2'));
    // The third offer is not applied while the second is still being applied.
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.driver().log.at(-1), 'apply offer-2');
    release();
    await until(
      () =>
        h
          .socket()
          .types()
          .filter((t) => t === 'subscriber.answer').length === 3,
    );
    assert.deepEqual(h.driver().log, [
      'apply offer-1',
      'applied offer-1',
      'answer',
      'apply offer-2',
      'applied offer-2',
      'answer',
      'apply offer-3',
      'applied offer-3',
      'answer',
    ]);
    const answers = h.socket().sent.filter((m) => m.type === 'subscriber.answer');
    assert.deepEqual(
      answers.map((m) => m.sdp),
      ['answer-1', 'answer-2', 'answer-3'],
    );
    assert.deepEqual(h.events, ['subscribed 0', 'subscribed 0', 'subscribed 0']);
  });

  test('a failed offer is reported and the next one still runs', async () => {
    const h = harness();
    await joined(h);
    const failures: unknown[] = [];
    h.session.on('subscribeFailed', (error) => failures.push(error));
    h.driver().gate = Promise.reject(new Error('bad sdp'));
    h.socket().deliver(offer('offer-1'));
    await until(() => failures.length === 1);
    h.driver().gate = undefined;
    h.socket().deliver(offer('offer-2'));
    await until(() => h.socket().types().includes('subscriber.answer'));
    assert.equal((failures[0] as Error).message, 'bad sdp');
  });

  test("remote candidates wait for their connection's remote description", async () => {
    const h = harness();
    await joined(h);
    h.socket().deliver({ type: 'trickle', target: 'subscriber', candidate: candidate(1) });
    h.socket().deliver({ type: 'trickle', target: 'publisher', candidate: candidate(2) });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(h.driver().log, []);
    h.socket().deliver(offer('offer-1'));
    await until(() => h.socket().types().includes('subscriber.answer'));
    // Added after the offer is applied and before the answer, as a browser needs.
    assert.deepEqual(h.driver().log, [
      'apply offer-1',
      'applied offer-1',
      'candidate subscriber candidate:1',
      'answer',
    ]);
    // Once the description is set, a candidate goes in at once.
    h.socket().deliver({ type: 'trickle', target: 'subscriber', candidate: null });
    await until(() => h.driver().log.includes('candidate subscriber end'));
    // The publisher's waits until its answer is applied.
    assert.ok(!h.driver().log.some((l) => l.startsWith('candidate publisher')));
    await h.session.publisherAnswered();
    assert.equal(h.driver().log.at(-1), 'candidate publisher candidate:2');
  });

  test('local publisher candidates wait until the server knows the publisher', async () => {
    const h = harness();
    await joined(h);
    const trickles = () =>
      h
        .socket()
        .sent.filter((m) => m.type === 'trickle')
        .map((m) => `${m.target} ${(m.candidate as IceCandidate).candidate.split(' ')[0]}`);
    h.driver().context.localCandidate('publisher', candidate(1));
    h.driver().context.localCandidate('subscriber', candidate(2));
    assert.deepEqual(trickles(), ['subscriber candidate:2']);
    const answered = h.session.publish('offer', [
      { mid: '0', kind: 'audio', source: 'microphone' },
    ]);
    // The publish request goes first, then what was gathered meanwhile, then trickle.
    assert.deepEqual(h.socket().types().slice(-3), ['trickle', 'publish', 'trickle']);
    h.driver().context.localCandidate('publisher', candidate(3));
    assert.deepEqual(trickles(), [
      'subscriber candidate:2',
      'publisher candidate:1',
      'publisher candidate:3',
    ]);
    const request = h.socket().sent.find((m) => m.type === 'publish');
    h.socket().deliver({
      type: 'publish.answer',
      ref: String(request?.id),
      sdp: 'answer',
      tracks: [{ mid: '0', trackId: 'TR_a' }],
    });
    assert.deepEqual((await answered).tracks, [{ mid: '0', trackId: 'TR_a' }]);
  });

  test('permission changes and application data from the room service are passed on', async () => {
    const h = harness();
    await joined(h, []);
    const seen: unknown[] = [];
    h.session.on('permissions', (p) => seen.push(p));
    h.session.on('data', (d) => seen.push(d));
    const s = h.socket();
    s.deliver({ type: 'permissions', canPublish: false, canSubscribe: true, canChat: false });
    s.deliver({ type: 'data', payload: 'hello', topic: 'news', ts: 5 });
    assert.deepEqual(seen, [
      { canPublish: false, canSubscribe: true, canChat: false },
      { payload: 'hello', topic: 'news', ts: 5 },
    ]);
  });

  test('the roster follows the server and never lists this session', async () => {
    const h = harness();
    await joined(h, [participant('PA_bob', 'bob')]);
    assert.deepEqual(
      h.session.participants().map((p) => p.identity),
      ['bob'],
    );
    const s = h.socket();
    s.deliver({ type: 'participant.joined', participant: participant('PA_carol', 'carol') });
    s.deliver({ type: 'participant.joined', participant: participant('PA_self', 'me') });
    const track = { trackId: 'TR_v', kind: 'video', source: 'camera', muted: false } as const;
    s.deliver({ type: 'track.published', participantSid: 'PA_carol', track });
    s.deliver({ type: 'track.muted', participantSid: 'PA_carol', trackId: 'TR_v', muted: true });
    assert.deepEqual(h.session.participant('PA_carol')?.tracks, [{ ...track, muted: true }]);
    s.deliver({ type: 'track.unpublished', participantSid: 'PA_carol', trackId: 'TR_v' });
    assert.deepEqual(h.session.participant('PA_carol')?.tracks, []);
    let left: ParticipantInfo | undefined;
    h.session.on('participantLeft', (_left, known) => {
      left = known;
    });
    s.deliver({ type: 'participant.left', sessionId: 'PA_bob', identity: 'bob', reason: 'left' });
    assert.equal(left?.identity, 'bob');
    assert.deepEqual(
      h.session.participants().map((p) => p.identity),
      ['carol'],
    );
    assert.deepEqual(h.events, [
      'participantJoined PA_carol',
      'trackPublished PA_carol',
      'trackMuted PA_carol',
      'trackUnpublished PA_carol',
      'participantLeft PA_bob',
    ]);
  });

  test("a draining node's reconnect URL is kept; nothing is emitted after close", async () => {
    const h = harness();
    await joined(h);
    h.socket().deliver({ type: 'leave', reason: 'draining', reconnect: { url: 'http://b.test' } });
    assert.equal(h.session.reconnectUrl, 'http://b.test');
    assert.deepEqual(h.events, ['leave draining']);
    await h.session.close();
    assert.equal(h.driver().closed, true);
    // The close we asked for is no disconnection, and the socket's late frames are ignored.
    h.socket().deliver({ type: 'participant.joined', participant: participant('PA_x') });
    await until(() => h.socket().readyState === 3);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(h.events, ['leave draining']);
    assert.ok(h.socket().types().includes('leave'), 'a joined session says leave');
  });

  test('a socket that closes on its own is a disconnection', async () => {
    const h = harness();
    await joined(h);
    h.socket().close(1006, 'gone');
    await until(() => h.events.length > 0);
    assert.deepEqual(h.events, ['disconnected']);
  });

  test('closing before the join sends no leave and rejects the connect', async () => {
    const h = harness();
    const connecting = h.session.connect({ url: 'ws://node.test', route: false, token: 't' });
    await until(() => h.joinRequest() !== undefined);
    await h.session.close();
    await assert.rejects(connecting, { name: 'SignalError', code: 'CLOSED' });
    assert.deepEqual(h.socket().types(), ['join']);
  });

  test('pins are checked before anything goes out', async () => {
    const h = harness();
    await assert.rejects(
      h.session.connect({ url: 'http://x.test', region: 'ams', node: 'n1', token: 't' }),
      { code: 'INVALID_ARGUMENT' },
    );
    await assert.rejects(h.session.connect({ url: 'http://x.test' }), { code: 'TOKEN_MISSING' });
  });
});
