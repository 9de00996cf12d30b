/**
 * The test-fixture MMDB writer (scripts/mmdb-writer.ts), checked by reading its output back
 * with the `maxmind` package, and the committed fixtures checked against the script.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Reader, type Response } from 'maxmind';
import { buildFixtures, FIXTURE_NETWORKS } from '../../../scripts/make-geoip-fixture.js';
import {
  MmdbFloat,
  MmdbInt32,
  MmdbUint,
  MmdbWriter,
  uint16,
  uint32,
  uint64,
} from '../../../scripts/mmdb-writer.js';

/** The reader's types only know MaxMind's own layouts; ours are checked by the asserts. */
// biome-ignore lint/suspicious/noExplicitAny: test records have ad-hoc shapes
type AnyRecord = Record<string, any>;
function open(buffer: Buffer) {
  const reader = new Reader<Response>(buffer);
  return {
    metadata: reader.metadata,
    get: (ip: string) => reader.get(ip) as unknown as AnyRecord | null,
    getWithPrefixLength: (ip: string) =>
      reader.getWithPrefixLength(ip) as unknown as [AnyRecord | null, number],
  };
}

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/geoip/', import.meta.url));

describe('MMDB writer', () => {
  for (const recordSize of [24, 28, 32] as const) {
    test(`${recordSize}-bit records round-trip through the maxmind reader`, () => {
      const writer = new MmdbWriter({ databaseType: 'Test', recordSize });
      writer.insert('10.0.0.0/8', { net: 'ten' });
      writer.insert('10.1.0.0/16', { net: 'ten-one' }); // more specific, inside the /8
      writer.insert('2001:db8::/32', { net: 'doc6' });
      writer.insert('192.0.2.128/25', { net: 'half' });
      const reader = open(writer.toBuffer());
      assert.equal(reader.metadata.recordSize, recordSize);
      assert.equal(reader.metadata.ipVersion, 6);
      assert.equal(reader.get('10.200.0.1')?.net, 'ten');
      assert.equal(reader.get('10.1.2.3')?.net, 'ten-one');
      assert.deepEqual(reader.getWithPrefixLength('10.1.2.3'), [{ net: 'ten-one' }, 16]);
      assert.equal(reader.get('2001:db8:ffff::1')?.net, 'doc6');
      assert.equal(reader.get('192.0.2.200')?.net, 'half');
      assert.equal(reader.get('192.0.2.100'), null);
      assert.equal(reader.get('11.0.0.1'), null);
      assert.equal(reader.get('::ffff:10.1.0.1')?.net, 'ten-one', 'the ::ffff:0:0/96 alias');
    });
  }

  test('28-bit records above 2^24 put their top bits in the shared middle nibble', () => {
    // A data section past 16 MiB makes the second record's pointer need 25 bits.
    const writer = new MmdbWriter({ databaseType: 'Big', recordSize: 28 });
    writer.insert('10.0.0.0/8', { blob: 'x'.repeat(16_800_000) });
    writer.insert('11.0.0.0/8', { small: 'y' });
    const reader = open(writer.toBuffer());
    assert.equal(reader.get('11.1.1.1')?.small, 'y');
    assert.equal(reader.get('10.1.1.1')?.blob?.length, 16_800_000);
  });

  test('every data type', () => {
    const writer = new MmdbWriter({ databaseType: 'Types' });
    const long = 'é'.repeat(40_000); // 80 000 bytes: the 3-byte size form
    writer.insert('198.51.100.0/24', {
      utf8: 'héllo',
      empty: '',
      medium: 'm'.repeat(300),
      long,
      double: 52.374,
      negative: -77.4874,
      float: new MmdbFloat(1.5),
      u16: uint16(65535),
      u32: uint32(4_000_000_000),
      u64: uint64(2n ** 63n + 5n),
      u128: new MmdbUint(128, 2n ** 100n),
      zero: uint32(0),
      i32: new MmdbInt32(-123456),
      yes: true,
      no: false,
      bytes: Buffer.from([1, 2, 3]),
      array: ['a', uint16(2), [true]],
      nested: { names: { en: 'Amsterdam', de: 'Amsterdam' } },
    });
    const reader = open(writer.toBuffer());
    const r = reader.get('198.51.100.1');
    assert.ok(r);
    assert.equal(r.utf8, 'héllo');
    assert.equal(r.empty, '');
    assert.equal(r.medium, 'm'.repeat(300));
    assert.equal(r.long, long);
    assert.equal(r.double, 52.374);
    assert.equal(r.negative, -77.4874);
    assert.equal(r.float, 1.5);
    assert.equal(r.u16, 65535);
    assert.equal(r.u32, 4_000_000_000);
    assert.equal(BigInt(r.u64 as bigint), 2n ** 63n + 5n);
    assert.equal(BigInt(r.u128 as bigint), 2n ** 100n);
    assert.equal(r.zero, 0);
    assert.equal(r.i32, -123456);
    assert.equal(r.yes, true);
    assert.equal(r.no, false);
    assert.deepEqual([...(r.bytes as Buffer)], [1, 2, 3]);
    assert.deepEqual(r.array, ['a', 2, [true]]);
    assert.deepEqual(r.nested, { names: { en: 'Amsterdam', de: 'Amsterdam' } });
  });

  test('IPv4-only trees and metadata', () => {
    const writer = new MmdbWriter({
      databaseType: 'V4',
      ipVersion: 4,
      languages: ['en', 'vi'],
      description: { en: 'four' },
      buildEpoch: 1_234_567_890,
    });
    writer.insert('203.0.113.0/24', { v: 4 });
    const reader = open(writer.toBuffer());
    assert.equal(reader.metadata.ipVersion, 4);
    assert.equal(reader.metadata.databaseType, 'V4');
    assert.deepEqual(reader.metadata.languages, ['en', 'vi']);
    assert.deepEqual(reader.metadata.description, { en: 'four' });
    assert.equal(reader.metadata.binaryFormatMajorVersion, 2);
    assert.equal(reader.metadata.binaryFormatMinorVersion, 0);
    assert.equal(reader.metadata.buildEpoch.getTime(), 1_234_567_890_000);
    assert.equal(reader.get('203.0.113.9')?.v, 4);
    assert.throws(() => writer.insert('2001:db8::/32', { v: 6 }), /IPv4 database/);
    assert.throws(() => writer.insert('203.0.113.0', { v: 4 }), /CIDR/);
    assert.throws(() => writer.insert('203.0.113.0/33', { v: 4 }), /prefix/);
  });

  test('identical records are stored once', () => {
    const one = new MmdbWriter({ databaseType: 'Dedup' });
    one.insert('10.0.0.0/8', { city: 'Same' });
    const two = new MmdbWriter({ databaseType: 'Dedup' });
    two.insert('10.0.0.0/8', { city: 'Same' });
    two.insert('12.0.0.0/8', { city: 'Same' });
    const sizeOf = (w: MmdbWriter) => w.toBuffer().length;
    // The second network adds tree nodes but no second copy of the record.
    const recordBytes = 1 + 1 + 4 + 1 + 4; // map(1) + "city" + "Same"
    assert.ok(sizeOf(two) - sizeOf(one) < recordBytes + 6 * 8, `${sizeOf(two) - sizeOf(one)}`);
  });
});

describe('committed GeoIP fixtures', () => {
  test('match what scripts/make-geoip-fixture.ts builds (rebuild them if this fails)', () => {
    for (const [name, bytes] of Object.entries(buildFixtures())) {
      const committed = readFileSync(join(FIXTURES, name));
      assert.ok(committed.equals(bytes), `${name} is stale: run the command in its README`);
    }
  });

  test('every fixture network reads back with the maxmind package', () => {
    const reader = open(readFileSync(join(FIXTURES, 'geosfu-city-test.mmdb')));
    assert.equal(reader.metadata.databaseType, 'GeoSFU-City-Test');
    assert.equal(reader.metadata.ipVersion, 6);
    for (const [cidr, place] of FIXTURE_NETWORKS) {
      const first = cidr.split('/')[0] as string;
      const record = reader.get(first);
      assert.equal(record?.city.names.en, place.city, cidr);
      assert.equal(record?.location.latitude, place.latitude, cidr);
    }
  });
});
