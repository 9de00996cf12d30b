import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ParticipantInfo, TrackInfo } from '@geosfu/common/protocol';
import { Roster } from './Roster.js';

const audio: TrackInfo = { trackId: 'TR_a', kind: 'audio', source: 'microphone', muted: false };

function info(sessionId: string, tracks: TrackInfo[] = []): ParticipantInfo {
  const base = { identity: sessionId, name: '', joinedAt: 0, nodeId: 'n', region: 'r' };
  return { sessionId, ...base, tracks };
}

test('reset lists the others, not this session, and keeps copies', () => {
  const roster = new Roster();
  const bob = info('bob', [audio]);
  roster.reset('me', [info('me'), bob]);
  assert.deepEqual(
    roster.list().map((p) => p.sessionId),
    ['bob'],
  );
  roster.mute('bob', 'TR_a', true);
  assert.equal(bob.tracks[0]?.muted, false, 'the server message is not mutated');
  assert.equal(roster.join(info('me')), false);
});

test('track changes of an unknown participant or track change nothing', () => {
  const roster = new Roster();
  roster.reset('me', []);
  assert.equal(roster.publish('ghost', audio), false);
  assert.equal(roster.unpublish('ghost', 'TR_a'), false);
  assert.equal(roster.mute('ghost', 'TR_a', true), false);
  assert.equal(roster.leave('ghost'), undefined);
  roster.join(info('bob'));
  assert.equal(roster.mute('bob', 'TR_a', true), false);
  assert.deepEqual(roster.list(), [info('bob')]);
});

test('a republished track replaces the old one; a rejoin replaces the participant', () => {
  const roster = new Roster();
  roster.reset('me', [info('bob', [audio])]);
  roster.publish('bob', { ...audio, muted: true });
  assert.deepEqual(roster.get('bob')?.tracks, [{ ...audio, muted: true }]);
  roster.join(info('bob'));
  assert.deepEqual(roster.get('bob')?.tracks, []);
  roster.reset('me', []);
  assert.deepEqual(roster.list(), []);
});
