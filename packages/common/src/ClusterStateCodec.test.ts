import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { z } from 'zod';
import {
  ClusterStateCodec,
  MAX_CLUSTER_STATE_BYTES,
  type OpenOptions,
} from './ClusterStateCodec.js';
import { canonicalJson, MAX_CLOCK_SKEW_MS, REPLAY_WINDOW_MS } from './signing.js';

const SECRET = 'a-cluster-secret-of-at-least-32-characters';
const NOW = 1_700_000_000_000;
const Event = z.object({ type: z.literal('left'), who: z.string() });
const event = { type: 'left', who: 'alice' } as const;
const channel = 'sfu:room:r1:events';
const asMessage: OpenOptions<z.infer<typeof Event>> = {
  kind: 'room-event',
  context: channel,
  schema: Event,
  freshness: 'message',
};

function reason(result: { ok: boolean; reason?: string }): string | undefined {
  return result.ok ? undefined : result.reason;
}

describe('ClusterStateCodec', () => {
  test('what one node seals, another with the same secret opens', () => {
    const raw = new ClusterStateCodec(SECRET).seal('room-event', channel, event, NOW);
    const opened = new ClusterStateCodec(SECRET).open(raw, asMessage, NOW + 5);
    assert.ok(opened.ok);
    assert.deepEqual(opened.value, event);
    assert.equal(opened.ts, NOW);
  });

  test('unsigned, tampered, other secret, other kind, other channel: signature', () => {
    const codec = new ClusterStateCodec(SECRET);
    const raw = codec.seal('room-event', channel, event, NOW);
    const open = (text: string, options = asMessage) => reason(codec.open(text, options, NOW));
    assert.equal(open(JSON.stringify(event)), 'signature', 'plain JSON is unsigned');
    const tampered = JSON.parse(raw);
    tampered.d.who = 'bob';
    assert.equal(open(JSON.stringify(tampered)), 'signature');
    const retimed = { ...JSON.parse(raw), ts: NOW + 1 };
    assert.equal(open(JSON.stringify(retimed)), 'signature', 'the timestamp is signed');
    const other = new ClusterStateCodec('another-secret-of-at-least-32-characters!!');
    assert.equal(open(other.seal('room-event', channel, event, NOW)), 'signature');
    assert.equal(open(codec.seal('session', channel, event, NOW)), 'signature', 'kind is signed');
    assert.equal(
      open(codec.seal('room-event', 'sfu:room:r2:events', event, NOW)),
      'signature',
      'an event of another room',
    );
    const noSig = { ...JSON.parse(raw), sig: 'x'.repeat(64) };
    assert.equal(open(JSON.stringify(noSig)), 'signature');
  });

  test('the relay key does not verify cluster state (domain separation)', () => {
    // The same secret, the relay's label: what a relay signature would be over this payload.
    const raw = JSON.parse(new ClusterStateCodec(SECRET).seal('room-event', channel, event, NOW));
    const relayKey = createHmac('sha256', SECRET).update('geosfu/relay/v1').digest();
    const { sig: _sig, ...unsigned } = raw;
    raw.sig = createHmac('sha256', relayKey)
      .update(canonicalJson({ ...unsigned, k: 'room-event', c: channel }))
      .digest('hex');
    const opened = new ClusterStateCodec(SECRET).open(JSON.stringify(raw), asMessage, NOW);
    assert.equal(reason(opened), 'signature');
  });

  test('messages: stale outside ±30 s, each id once within the replay window', () => {
    const a = new ClusterStateCodec(SECRET);
    const b = new ClusterStateCodec(SECRET);
    const raw = a.seal('room-event', channel, event, NOW);
    assert.equal(reason(b.open(raw, asMessage, NOW + MAX_CLOCK_SKEW_MS + 1)), 'stale');
    assert.equal(reason(b.open(raw, asMessage, NOW - MAX_CLOCK_SKEW_MS - 1)), 'stale');
    assert.ok(b.open(raw, asMessage, NOW + MAX_CLOCK_SKEW_MS).ok);
    assert.equal(reason(b.open(raw, asMessage, NOW + MAX_CLOCK_SKEW_MS)), 'duplicate');
    assert.equal(reason(b.open(raw, asMessage, NOW + REPLAY_WINDOW_MS + 1)), 'stale');
    // Another message with the same payload is not a replay: ids are per message.
    assert.ok(b.open(a.seal('room-event', channel, event, NOW), asMessage, NOW).ok);
  });

  test('records: a maximum age, or none; read again and again without being replays', () => {
    const codec = new ClusterStateCodec(SECRET);
    const raw = codec.seal('node-record', 'sfu:node:a', event, NOW);
    const aged = { ...asMessage, kind: 'node-record', context: 'sfu:node:a' } as const;
    const maxAge = { ...aged, freshness: { maxAgeMs: 5_000 } };
    assert.ok(codec.open(raw, maxAge, NOW + 5_000).ok);
    assert.ok(codec.open(raw, maxAge, NOW + 5_000).ok, 'not a duplicate');
    assert.equal(reason(codec.open(raw, maxAge, NOW + 5_001)), 'stale');
    const forever = { ...aged, freshness: 'record' as const };
    assert.ok(codec.open(raw, forever, NOW + 86_400_000).ok);
  });

  test('authentic but not the schema: invalid; not JSON, too large, not an envelope: malformed', () => {
    const codec = new ClusterStateCodec(SECRET);
    const bad = codec.seal('room-event', channel, { type: 'joined' }, NOW);
    assert.equal(reason(codec.open(bad, asMessage, NOW)), 'invalid');
    assert.equal(reason(codec.open('{not json', asMessage, NOW)), 'malformed');
    assert.equal(
      reason(codec.open(`"${'x'.repeat(MAX_CLUSTER_STATE_BYTES)}"`, asMessage, NOW)),
      'malformed',
    );
    const extra = { ...JSON.parse(codec.seal('room-event', channel, event, NOW)), k: 'x' };
    assert.equal(reason(codec.open(JSON.stringify(extra), asMessage, NOW)), 'malformed');
    const v2 = { ...JSON.parse(codec.seal('room-event', channel, event, NOW)), v: 2 };
    assert.equal(reason(codec.open(JSON.stringify(v2), asMessage, NOW)), 'malformed');
  });

  test('a short secret is refused with CONFIG_INVALID', () => {
    assert.throws(() => new ClusterStateCodec('short'), { code: 'CONFIG_INVALID' });
  });
});
