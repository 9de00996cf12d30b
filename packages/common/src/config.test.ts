import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configMarkdownTable, DEV_API_KEY, loadConfig, requireLocation } from './config.js';
import { SfuError } from './errors.js';

const SECRET = 'a-production-secret-of-32-chars!!';

test('dev mode fills in the dev credentials and defaults', () => {
  const c = loadConfig(['--dev'], {});
  assert.equal(c.dev, true);
  assert.equal(c.apiKey, DEV_API_KEY);
  assert.equal(c.httpPort, 7880);
  assert.equal(c.region, 'local');
  assert.equal(c.maxParticipants, 100);
  assert.deepEqual(c.iceServers, []);
  assert.match(c.nodeId, /-[0-9a-f]{6}$/);
  assert.ok(Object.isFrozen(c));
});

test('flags override environment variables', () => {
  const c = loadConfig(['--port', '9000', '--region', 'sin'], {
    SFU_HTTP_PORT: '8000',
    SFU_REGION: 'ams',
    SFU_API_KEY: 'k',
    SFU_API_SECRET: SECRET,
  });
  assert.equal(c.httpPort, 9000);
  assert.equal(c.region, 'sin');
});

test('without --dev, credentials are required and the error says how to fix it', () => {
  assert.throws(
    () => loadConfig([], {}),
    (e: unknown) => e instanceof SfuError && e.code === 'CONFIG_INVALID' && /--dev/.test(e.message),
  );
  assert.throws(() => loadConfig([], { SFU_API_KEY: 'k', SFU_API_SECRET: 'short' }), /at least 32/);
});

test('every bad field is reported at once', () => {
  try {
    loadConfig(['--dev'], {
      SFU_HTTP_PORT: 'abc',
      SFU_RTC_PORT_RANGE: '5000-4000',
      SFU_ICE_SERVERS: '{nope',
      SFU_ANNOUNCED_IPS: 'not an ip',
    });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof SfuError);
    for (const name of [
      'SFU_HTTP_PORT',
      'SFU_RTC_PORT_RANGE',
      'SFU_ICE_SERVERS',
      'SFU_ANNOUNCED_IPS',
    ]) {
      assert.match(e.message, new RegExp(name));
    }
  }
});

test('parses lists, ranges and ICE servers', () => {
  const c = loadConfig(['--dev'], {
    SFU_RTC_PORT_RANGE: '40000-40100',
    SFU_ANNOUNCED_IPS: '203.0.113.7, 2001:db8::1',
    SFU_ICE_SERVERS: '[{"urls":"turn:t.example.com:3478","username":"u","credential":"p"}]',
  });
  assert.deepEqual(c.rtcPortRange, [40000, 40100]);
  assert.deepEqual(c.announcedIps, ['203.0.113.7', '2001:db8::1']);
  assert.equal(c.iceServers[0]?.username, 'u');
});

test('TURN URLs and secret go together; URLs are turn: or turns: with a transport', () => {
  const urls =
    'turn:t.example.com:3478?transport=udp, turn:t.example.com:3478?transport=tcp,turns:t.example.com:5349?transport=tcp';
  const c = loadConfig(['--dev'], { SFU_TURN_URLS: urls, SFU_TURN_SECRET: SECRET });
  assert.equal(c.turnUrls.length, 3);
  assert.equal(c.turnUrls[1], 'turn:t.example.com:3478?transport=tcp');
  assert.equal(c.turnSecret, SECRET);
  assert.deepEqual(loadConfig(['--dev'], {}).turnUrls, []);
  assert.throws(() => loadConfig(['--dev'], { SFU_TURN_URLS: urls }), /SFU_TURN_SECRET together/);
  assert.throws(
    () => loadConfig(['--dev'], { SFU_TURN_URLS: 'stun:t.example.com', SFU_TURN_SECRET: SECRET }),
    /SFU_TURN_URLS.*turn: or turns:/,
  );
});

test('a TLS certificate needs its key', () => {
  assert.throws(() => loadConfig(['--dev', '--tls-cert', '/x/cert.pem'], {}), /SFU_TLS_KEY/);
  const c = loadConfig(['--dev', '--tls-cert', '/x/c.pem', '--tls-key', '/x/k.pem'], {});
  assert.equal(c.tlsKey, '/x/k.pem');
});

test('ping timeout must leave room for a late ping', () => {
  assert.throws(
    () => loadConfig(['--dev', '--ping-interval-ms', '5000', '--ping-timeout-ms', '6000'], {}),
    /twice/,
  );
});

test('unknown flags are rejected', () => {
  assert.throws(
    () => loadConfig(['--dev', '--colour', 'blue'], {}),
    (e: unknown) => e instanceof SfuError && e.code === 'CONFIG_INVALID',
  );
});

test('the README table lists every variable', () => {
  const table = configMarkdownTable();
  for (const v of ['SFU_HTTP_PORT', 'SFU_API_SECRET', 'SFU_RTC_PORT_RANGE', 'SFU_ANNOUNCED_IPS'])
    assert.match(table, new RegExp(v));
});

test('cluster mode needs a cluster secret, and a location for the node', () => {
  const env = { SFU_API_KEY: 'k', SFU_API_SECRET: SECRET, REDIS_URL: 'redis://127.0.0.1:6379' };
  assert.throws(() => loadConfig([], env), /SFU_CLUSTER_SECRET/);
  const c = loadConfig(['--region', 'zz'], { ...env, SFU_CLUSTER_SECRET: SECRET });
  assert.equal(c.location, undefined);
  assert.throws(() => requireLocation(c), /SFU_LAT/);
  const placed = loadConfig(['--region', 'sin'], { ...env, SFU_CLUSTER_SECRET: SECRET });
  assert.deepEqual(requireLocation(placed), { latitude: 1.35, longitude: 103.82 });
  const custom = loadConfig(['--region', 'zz', '--lat', '10', '--lon', '20'], {
    ...env,
    SFU_CLUSTER_SECRET: SECRET,
  });
  assert.deepEqual(custom.location, { latitude: 10, longitude: 20 });
  assert.throws(() => loadConfig(['--dev', '--lat', '10'], {}), /both SFU_LAT and SFU_LON/);
});

test('registry heartbeat must fit twice into the TTL', () => {
  assert.throws(
    () => loadConfig(['--dev', '--registry-ttl-ms', '4000', '--registry-heartbeat-ms', '2000'], {}),
    /less than half/,
  );
  const c = loadConfig(['--dev'], {});
  assert.equal(c.registryTtlMs, 10_000);
  assert.equal(c.heartbeatMs, 3_000);
  assert.equal(c.defaultRegion, 'local');
});

test('a metrics port is optional and must differ from the HTTP port', () => {
  assert.equal(loadConfig(['--dev'], {}).metricsPort, undefined);
  assert.equal(loadConfig(['--dev'], { SFU_METRICS_PORT: '9464' }).metricsPort, 9464);
  assert.equal(loadConfig(['--dev', '--port', '0', '--metrics-port', '0'], {}).metricsPort, 0);
  assert.throws(
    () => loadConfig(['--dev', '--port', '9000', '--metrics-port', '9000'], {}),
    /SFU_METRICS_PORT must differ/,
  );
});

test('Redis Sentinel: addresses parsed, master name defaulted, the URL still required', () => {
  const c = loadConfig(['--dev'], {
    REDIS_URL: 'redis://:pw@sentinel/2',
    REDIS_SENTINELS: '10.0.0.5:26379, [fd00::7]:26380,sentinel-c.internal:26379',
    REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
  });
  assert.deepEqual(c.redisSentinels, [
    { host: '10.0.0.5', port: 26379 },
    { host: 'fd00::7', port: 26380 },
    { host: 'sentinel-c.internal', port: 26379 },
  ]);
  assert.equal(c.redisSentinelMaster, 'mymaster');
  assert.equal(c.redisSentinelPassword, 'sentinel-pass');
  assert.equal(loadConfig(['--dev'], {}).redisSentinels, undefined);
  assert.throws(
    () => loadConfig(['--dev'], { REDIS_SENTINELS: '10.0.0.5:26379' }),
    (e: unknown) =>
      e instanceof SfuError && e.code === 'CONFIG_INVALID' && /needs REDIS_URL/.test(e.message),
  );
  for (const bad of ['10.0.0.5', '10.0.0.5:99999', 'a b:1', ',']) {
    assert.throws(
      () => loadConfig(['--dev'], { REDIS_URL: 'redis://x', REDIS_SENTINELS: bad }),
      /REDIS_SENTINELS/,
      bad,
    );
  }
});
