import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIMITS, parseClientMessage, parseServerMessage } from './protocol.js';

test('valid client messages parse', () => {
  const r = parseClientMessage(JSON.stringify({ type: 'chat', id: 'c1', text: 'hi' }));
  assert.ok(r.ok);
  assert.equal(r.ok && r.message.type, 'chat');
});

test('each kind of bad frame has its code, and keeps the request id when there is one', () => {
  const cases: [string, string][] = [
    ['{', 'BAD_MESSAGE'],
    ['42', 'BAD_MESSAGE'],
    ['{"id":"x"}', 'BAD_MESSAGE'],
    ['{"type":"nope","id":"x"}', 'UNKNOWN_TYPE'],
    ['{"type":"chat","id":"x","text":""}', 'BAD_MESSAGE'],
    ['{"type":"mute","id":"x","trackId":"t","muted":"yes"}', 'BAD_MESSAGE'],
    [
      JSON.stringify({ type: 'chat', text: 'x'.repeat(LIMITS.maxMessageBytes) }),
      'MESSAGE_TOO_LARGE',
    ],
  ];
  for (const [raw, code] of cases) {
    const r = parseClientMessage(raw);
    assert.equal(r.ok, false, raw.slice(0, 40));
    if (!r.ok) assert.equal(r.code, code, raw.slice(0, 40));
  }
  const withRef = parseClientMessage('{"type":"nope","id":"x"}');
  assert.equal(!withRef.ok && withRef.ref, 'x');
});

test('the error message names the bad field', () => {
  const r = parseClientMessage('{"type":"mute","trackId":"t","muted":"yes"}');
  assert.ok(!r.ok);
  assert.match(r.ok ? '' : r.message, /muted/);
});

test('server messages are validated too', () => {
  assert.ok(parseServerMessage('{"type":"pong","ts":1,"serverTs":2}').ok);
  assert.ok(!parseServerMessage('{"type":"error","code":"NOT_A_CODE","message":"x"}').ok);
});
