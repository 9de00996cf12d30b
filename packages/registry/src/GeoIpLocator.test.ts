import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SfuError } from '@geosfu/common';
import { GeoIpLocator, type GeoLookup } from './GeoIpLocator.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/geoip/', import.meta.url));
const OURS = join(FIXTURES, 'geosfu-city-test.mmdb');
const MAXMIND = join(FIXTURES, 'maxmind/GeoIP2-City-Test.mmdb');
const GEOLITE = join(FIXTURES, 'maxmind/GeoLite2-City-Test.mmdb');
const DBIP_V4 = join(FIXTURES, 'dbip-city-test-ipv4.mmdb');
const DBIP_V6 = join(FIXTURES, 'dbip-city-test-ipv6.mmdb');

function assertPlace(
  actual: GeoLookup,
  expected: { city?: string; country: string; latitude: number; longitude: number },
) {
  assert.equal(actual.source, 'geoip', JSON.stringify(actual));
  if (actual.source !== 'geoip') return;
  assert.equal(actual.country, expected.country);
  if (expected.city) assert.equal(actual.city, expected.city);
  assert.ok(Math.abs(actual.latitude - expected.latitude) < 0.01, `${actual.latitude}`);
  assert.ok(Math.abs(actual.longitude - expected.longitude) < 0.01, `${actual.longitude}`);
}

const AMSTERDAM = { city: 'Amsterdam', country: 'NL', latitude: 52.374, longitude: 4.8897 };
const SINGAPORE = { city: 'Singapore', country: 'SG', latitude: 1.2897, longitude: 103.8501 };
const HCM = { city: 'Ho Chi Minh City', country: 'VN', latitude: 10.8231, longitude: 106.6297 };

describe('GeoIpLocator', () => {
  const open: GeoIpLocator[] = [];
  const locator = async (paths: string | string[]) => {
    const l = await GeoIpLocator.open({ paths });
    open.push(l);
    return l;
  };
  after(async () => {
    for (const l of open) await l.close();
  });

  test('MaxMind GeoIP2-City layout (MaxMind test databases)', async () => {
    const geo = await locator(MAXMIND);
    assertPlace(geo.lookup('81.2.69.160'), {
      city: 'London',
      country: 'GB',
      latitude: 51.5142,
      longitude: -0.0931,
    });
    assertPlace(geo.lookup('214.0.0.0'), {
      city: 'Singapore',
      country: 'SG',
      latitude: 1.336,
      longitude: 103.7716,
    });
    assertPlace(geo.lookup('89.160.20.128'), {
      city: 'Linköping',
      country: 'SE',
      latitude: 58.4167,
      longitude: 15.6167,
    });
    const lite = await locator(GEOLITE);
    assertPlace(lite.lookup('175.16.199.0'), {
      city: 'Changchun',
      country: 'CN',
      latitude: 43.88,
      longitude: 125.3228,
    });
    assert.deepEqual(geo.lookup('198.51.100.1'), { source: 'unknown' });
  });

  test('our fixture: documentation ranges mapped to cities, IPv4 and IPv6', async () => {
    const geo = await locator(OURS);
    assertPlace(geo.lookup('198.51.100.1'), AMSTERDAM);
    assertPlace(geo.lookup('198.51.100.70'), SINGAPORE);
    assertPlace(geo.lookup('198.51.100.130'), HCM);
    assertPlace(geo.lookup('198.51.100.200'), {
      city: 'Hanoi',
      country: 'VN',
      latitude: 21.0278,
      longitude: 105.8342,
    });
    assertPlace(geo.lookup('203.0.113.10'), {
      city: 'Frankfurt am Main',
      country: 'DE',
      latitude: 50.1109,
      longitude: 8.6821,
    });
    assertPlace(geo.lookup('203.0.113.70'), {
      city: 'Ashburn',
      country: 'US',
      latitude: 39.0438,
      longitude: -77.4874,
    });
    assertPlace(geo.lookup('203.0.113.130'), {
      city: 'Sydney',
      country: 'AU',
      latitude: -33.8688,
      longitude: 151.2093,
    });
    assertPlace(geo.lookup('2001:db8:1::1'), AMSTERDAM);
    assertPlace(geo.lookup('2001:db8:2:ffff::1'), SINGAPORE);
    assertPlace(geo.lookup('2001:DB8:3::42'), HCM);
    // A country-level entry without coordinates is "unknown", but says the country.
    assert.deepEqual(geo.lookup('203.0.113.200'), { source: 'unknown', country: 'US' });
    assert.deepEqual(geo.lookup('192.0.2.1'), { source: 'unknown' });
    assert.deepEqual(geo.lookup('2001:db8:4::1'), { source: 'unknown' });
    assert.deepEqual(geo.locate('198.51.100.1'), { latitude: 52.374, longitude: 4.8897 });
    assert.equal(geo.locate('192.0.2.1'), undefined);
  });

  test('IPv4-mapped IPv6 addresses are looked up as IPv4', async () => {
    const geo = await locator(OURS);
    assertPlace(geo.lookup('::ffff:198.51.100.130'), HCM);
    assertPlace(geo.lookup('::FFFF:c633:6482'), HCM); // 198.51.100.130 in hex groups
    assert.deepEqual(geo.lookup('::ffff:127.0.0.1'), { source: 'private' });
    const maxmind = await locator(MAXMIND);
    assertPlace(maxmind.lookup('::ffff:81.2.69.160'), { city: 'London', ...gb });
  });

  test('flat DB-IP layout in split IPv4/IPv6 files, by list and by pattern', async () => {
    for (const paths of [[DBIP_V4, DBIP_V6], join(FIXTURES, 'dbip-city-test-ipv{4,6}.mmdb')]) {
      const geo = await locator(paths);
      assert.deepEqual(
        geo.databases.map((d) => d.ipVersion),
        [4, 6],
      );
      assertPlace(geo.lookup('198.51.100.5'), AMSTERDAM);
      assertPlace(geo.lookup('::ffff:198.51.100.70'), SINGAPORE);
      assertPlace(geo.lookup('2001:db8:3::1'), HCM);
      assertPlace(geo.lookup('2001:db8:1::1'), AMSTERDAM);
      // 2001:db8::/32 starts with the bits of 32.1.13.184: an IPv4-only tree must never be
      // walked with an IPv6 address.
      assert.deepEqual(geo.lookup('2001:db8:9::1'), { source: 'unknown' });
    }
    const star = await locator(join(FIXTURES, 'dbip-city-test-*.mmdb'));
    assert.equal(star.databases.length, 2);
    await assert.rejects(
      GeoIpLocator.open({ paths: join(FIXTURES, 'nothing-*.mmdb') }),
      (e: SfuError) => e.code === 'CONFIG_INVALID' && /matches no file/.test(e.message),
    );
  });

  test('garbage is rejected with INVALID_ARGUMENT', async () => {
    const geo = await locator(OURS);
    for (const bad of [
      '',
      'localhost',
      '1.2.3',
      '1.2.3.256',
      '::g',
      '198.51.100.1/24',
      ' ; DROP',
    ]) {
      assert.throws(
        () => geo.lookup(bad),
        (e: unknown) => e instanceof SfuError && e.code === 'INVALID_ARGUMENT',
        bad,
      );
    }
    assert.throws(() => geo.lookup(undefined as unknown as string), SfuError);
  });

  test('private, loopback, link-local and unspecified addresses', async () => {
    const geo = await locator(OURS);
    for (const ip of [
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '127.0.0.1',
      '169.254.10.10',
      '0.0.0.0',
      '::1',
      '::',
      'fd12:3456::1',
      'fe80::1',
      'fe80::1%eth0',
      '::ffff:10.0.0.1',
    ]) {
      assert.deepEqual(geo.lookup(ip), { source: 'private' }, ip);
    }
    // Neighbours of private ranges are public.
    assert.deepEqual(geo.lookup('172.32.0.1'), { source: 'unknown' });
    assert.deepEqual(geo.lookup('100.64.0.1'), { source: 'unknown' }, 'CGNAT is just unknown');
  });

  test('a bad path fails with CONFIG_INVALID naming the file', async () => {
    await assert.rejects(
      GeoIpLocator.open({ paths: '/nonexistent/GeoLite2-City.mmdb' }),
      (e: SfuError) => e.code === 'CONFIG_INVALID' && e.message.includes('/nonexistent/'),
    );
    await assert.rejects(
      GeoIpLocator.open({ paths: fileURLToPath(import.meta.url) }),
      (e: SfuError) => e.code === 'CONFIG_INVALID',
    );
  });
});

const gb = { country: 'GB', latitude: 51.5142, longitude: -0.0931 };

describe('GeoIpLocator reloads a replaced database', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'geosfu-geoip-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('a truncated file keeps the old reader; an atomic replace is picked up', async () => {
    const path = join(dir, 'city.mmdb');
    copyFileSync(OURS, path);
    const geo = await GeoIpLocator.open({ paths: path, pollIntervalMs: 100 });
    try {
      assertPlace(geo.lookup('198.51.100.1'), AMSTERDAM);

      // A download in progress: the first half of another database, written in place.
      const failed = geo.waitFor('reloadFailed');
      const maxmind = readFileSync(MAXMIND);
      writeFileSync(path, maxmind.subarray(0, maxmind.length / 2));
      const [failedPath, error] = await failed;
      assert.equal(failedPath, path);
      assert.ok(error instanceof Error);
      assertPlace(geo.lookup('198.51.100.1'), AMSTERDAM);
      assert.equal(geo.databases[0]?.type, 'GeoSFU-City-Test');

      // The finished download, renamed over the file (the new inode is noticed).
      const reloaded = geo.waitFor('reloaded');
      writeFileSync(join(dir, 'city.mmdb.tmp'), maxmind);
      renameSync(join(dir, 'city.mmdb.tmp'), path);
      await reloaded;
      assert.equal(geo.databases[0]?.type, 'GeoIP2-City');
      assertPlace(geo.lookup('81.2.69.160'), { city: 'London', ...gb });
      assert.deepEqual(geo.lookup('198.51.100.1'), { source: 'unknown' });

      // An explicit check with nothing changed is a no-op.
      await geo.checkForUpdates();
      assert.equal(geo.databases[0]?.type, 'GeoIP2-City');
    } finally {
      await geo.close();
      await geo.close(); // idempotent
    }
    assert.throws(() => geo.lookup('198.51.100.1'), /closed/);
  });
});
