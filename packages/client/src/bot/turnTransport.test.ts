import assert from 'node:assert/strict';
import { test } from 'node:test';
import { preferTurnTransport } from './peer.js';

test('the TURN URLs of the preferred transport come first (werift uses the first)', () => {
  const servers = [
    { urls: 'stun:stun.example.com' },
    {
      urls: [
        'turn:t.example.com:3478?transport=udp',
        'turn:t.example.com:3478?transport=tcp',
        'turns:t.example.com:5349?transport=tcp',
      ],
      username: 'u',
      credential: 'c',
    },
  ];
  const tcp = preferTurnTransport(servers, 'tcp');
  assert.deepEqual(tcp[0]?.urls, [
    'turn:t.example.com:3478?transport=tcp',
    'turn:t.example.com:3478?transport=udp',
    'turns:t.example.com:5349?transport=tcp',
  ]);
  assert.equal(tcp[0]?.username, 'u');
  assert.deepEqual(
    preferTurnTransport(servers, 'tls')[0]?.urls[0],
    'turns:t.example.com:5349?transport=tcp',
  );
});
