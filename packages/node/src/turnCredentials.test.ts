import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { iceServersFor, turnCredential } from './turnCredentials.js';

const SECRET = 'turn-secret-for-unit-tests-0123456789abcdef';

test('the credential is coturn use-auth-secret: expiry:identity, base64 HMAC-SHA1', () => {
  const { username, credential } = turnCredential(SECRET, 'alice', 1_900_000_000.7);
  assert.equal(username, '1900000000:alice');
  // The value `turnutils_uclient`/coturn compute for the same secret and username.
  assert.equal(credential, createHmac('sha1', SECRET).update(username).digest('base64'));
  assert.match(credential, /^[A-Za-z0-9+/]{27}=$/);
});

test('joined carries the static servers, then the TURN servers with a minted credential', () => {
  const expiresAt = new Date(1_900_000_000_000);
  const urls = [
    'turn:turn.example.com:3478?transport=udp',
    'turn:turn.example.com:3478?transport=tcp',
    'turns:turn.example.com:5349?transport=tcp',
  ];
  const servers = iceServersFor(
    { iceServers: [{ urls: 'stun:stun.example.com' }], turnUrls: urls, turnSecret: SECRET },
    'bob',
    expiresAt,
  );
  assert.equal(servers.length, 2);
  assert.deepEqual(servers[0], { urls: 'stun:stun.example.com' });
  assert.deepEqual(servers[1]?.urls, urls);
  assert.equal(servers[1]?.username, '1900000000:bob');
  assert.equal(servers[1]?.credential, turnCredential(SECRET, 'bob', 1_900_000_000).credential);
});

test('without TURN settings only the static list goes out', () => {
  const servers = iceServersFor(
    { iceServers: [], turnUrls: [], turnSecret: undefined },
    'bob',
    new Date(),
  );
  assert.deepEqual(servers, []);
});
