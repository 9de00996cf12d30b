/**
 * Builds the GeoIP test databases in test/fixtures/geoip/ from the table below. They map
 * documentation ranges (RFC 5737 198.51.100.0/24 and 203.0.113.0/24, RFC 3849
 * 2001:db8::/32) to cities, so that tests can locate a "caller" in Amsterdam, Singapore or
 * Ho Chi Minh City without a real database.
 *
 *   node --import tsx scripts/make-geoip-fixture.ts [outDir]
 *
 * Output (deterministic: same bytes on every run):
 * - geosfu-city-test.mmdb: GeoIP2-City layout (location.latitude, country.iso_code,
 *   city.names.en ...), IPv6 tree with IPv4 at ::/96 and the ::ffff:0:0/96 alias;
 * - dbip-city-test-ipv4.mmdb, dbip-city-test-ipv6.mmdb: the flat layout of DB-IP Lite as
 *   ip-location-db ships it ({country_code, state1, city, latitude, longitude, ...}), split
 *   by address family; the IPv4 file is an IPv4-only tree (ip_version 4).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MmdbFloat, type MmdbValue, MmdbWriter, uint16, uint32 } from './mmdb-writer.js';

interface Place {
  city: string;
  cityGeonameId: number;
  state?: string;
  country: string;
  countryName: string;
  countryGeonameId: number;
  continent: string;
  continentName: string;
  continentGeonameId: number;
  latitude: number;
  longitude: number;
  timeZone: string;
  accuracyRadius: number;
}

const EUROPE = { continent: 'EU', continentName: 'Europe', continentGeonameId: 6255148 };
const ASIA = { continent: 'AS', continentName: 'Asia', continentGeonameId: 6255147 };
const NORTH_AMERICA = {
  continent: 'NA',
  continentName: 'North America',
  continentGeonameId: 6255149,
};
const OCEANIA = { continent: 'OC', continentName: 'Oceania', continentGeonameId: 6255151 };

const PLACES = {
  amsterdam: {
    city: 'Amsterdam',
    cityGeonameId: 2759794,
    state: 'North Holland',
    country: 'NL',
    countryName: 'Netherlands',
    countryGeonameId: 2750405,
    ...EUROPE,
    latitude: 52.374,
    longitude: 4.8897,
    timeZone: 'Europe/Amsterdam',
    accuracyRadius: 20,
  },
  singapore: {
    city: 'Singapore',
    cityGeonameId: 1880252,
    country: 'SG',
    countryName: 'Singapore',
    countryGeonameId: 1880251,
    ...ASIA,
    latitude: 1.2897,
    longitude: 103.8501,
    timeZone: 'Asia/Singapore',
    accuracyRadius: 10,
  },
  hoChiMinhCity: {
    city: 'Ho Chi Minh City',
    cityGeonameId: 1566083,
    state: 'Ho Chi Minh',
    country: 'VN',
    countryName: 'Vietnam',
    countryGeonameId: 1562822,
    ...ASIA,
    latitude: 10.8231,
    longitude: 106.6297,
    timeZone: 'Asia/Ho_Chi_Minh',
    accuracyRadius: 20,
  },
  hanoi: {
    city: 'Hanoi',
    cityGeonameId: 1581130,
    state: 'Hanoi',
    country: 'VN',
    countryName: 'Vietnam',
    countryGeonameId: 1562822,
    ...ASIA,
    latitude: 21.0278,
    longitude: 105.8342,
    timeZone: 'Asia/Ho_Chi_Minh',
    accuracyRadius: 20,
  },
  frankfurt: {
    city: 'Frankfurt am Main',
    cityGeonameId: 2925533,
    state: 'Hesse',
    country: 'DE',
    countryName: 'Germany',
    countryGeonameId: 2921044,
    ...EUROPE,
    latitude: 50.1109,
    longitude: 8.6821,
    timeZone: 'Europe/Berlin',
    accuracyRadius: 20,
  },
  ashburn: {
    city: 'Ashburn',
    cityGeonameId: 4744870,
    state: 'Virginia',
    country: 'US',
    countryName: 'United States',
    countryGeonameId: 6252001,
    ...NORTH_AMERICA,
    latitude: 39.0438,
    longitude: -77.4874,
    timeZone: 'America/New_York',
    accuracyRadius: 50,
  },
  sydney: {
    city: 'Sydney',
    cityGeonameId: 2147714,
    state: 'New South Wales',
    country: 'AU',
    countryName: 'Australia',
    countryGeonameId: 2077456,
    ...OCEANIA,
    latitude: -33.8688,
    longitude: 151.2093,
    timeZone: 'Australia/Sydney',
    accuracyRadius: 20,
  },
} satisfies Record<string, Place>;

/** The networks and where they are. Keep test/fixtures/geoip/README.md in step. */
export const FIXTURE_NETWORKS: readonly [cidr: string, place: Place][] = [
  ['198.51.100.0/26', PLACES.amsterdam],
  ['198.51.100.64/26', PLACES.singapore],
  ['198.51.100.128/26', PLACES.hoChiMinhCity],
  ['198.51.100.192/26', PLACES.hanoi],
  ['203.0.113.0/26', PLACES.frankfurt],
  ['203.0.113.64/26', PLACES.ashburn],
  ['203.0.113.128/26', PLACES.sydney],
  ['2001:db8:1::/48', PLACES.amsterdam],
  ['2001:db8:2::/48', PLACES.singapore],
  ['2001:db8:3::/48', PLACES.hoChiMinhCity],
];

/** A network known only by its country (no location): a locator must answer "unknown". */
const COUNTRY_ONLY: readonly [cidr: string, place: Place][] = [
  ['203.0.113.192/26', PLACES.ashburn],
];

const names = (en: string) => ({ en });

function geoip2City(place: Place, withLocation = true): MmdbValue {
  const country = {
    geoname_id: uint32(place.countryGeonameId),
    iso_code: place.country,
    names: names(place.countryName),
  };
  const common = {
    continent: {
      code: place.continent,
      geoname_id: uint32(place.continentGeonameId),
      names: names(place.continentName),
    },
    country,
    registered_country: country,
  };
  if (!withLocation) return common;
  return {
    city: { geoname_id: uint32(place.cityGeonameId), names: names(place.city) },
    ...common,
    location: {
      accuracy_radius: uint16(place.accuracyRadius),
      latitude: place.latitude,
      longitude: place.longitude,
      time_zone: place.timeZone,
    },
    ...(place.state ? { subdivisions: [{ names: names(place.state) }] } : {}),
  };
}

function flat(place: Place): MmdbValue {
  // ip-location-db stores coordinates as 32-bit floats; the reader must not care.
  return {
    country_code: place.country,
    state1: place.state ?? '',
    state2: '',
    city: place.city,
    postcode: '',
    latitude: new MmdbFloat(place.latitude),
    longitude: new MmdbFloat(place.longitude),
    timezone: place.timeZone,
  };
}

export function buildFixtures(): Record<string, Buffer> {
  const city = new MmdbWriter({
    databaseType: 'GeoSFU-City-Test',
    description: {
      en: 'GeoSFU test database: documentation ranges mapped to cities (GeoIP2-City layout)',
    },
  });
  for (const [cidr, place] of FIXTURE_NETWORKS) city.insert(cidr, geoip2City(place));
  for (const [cidr, place] of COUNTRY_ONLY) city.insert(cidr, geoip2City(place, false));

  const v4 = new MmdbWriter({
    databaseType: 'DBIP-City-Lite-Test',
    ipVersion: 4,
    description: { en: 'GeoSFU test database: flat DB-IP layout, IPv4' },
  });
  const v6 = new MmdbWriter({
    databaseType: 'DBIP-City-Lite-Test',
    description: { en: 'GeoSFU test database: flat DB-IP layout, IPv6' },
  });
  for (const [cidr, place] of FIXTURE_NETWORKS) {
    (cidr.includes(':') ? v6 : v4).insert(cidr, flat(place));
  }
  return {
    'geosfu-city-test.mmdb': city.toBuffer(),
    'dbip-city-test-ipv4.mmdb': v4.toBuffer(),
    'dbip-city-test-ipv6.mmdb': v6.toBuffer(),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir =
    process.argv[2] ?? fileURLToPath(new URL('../test/fixtures/geoip/', import.meta.url));
  mkdirSync(outDir, { recursive: true });
  for (const [name, bytes] of Object.entries(buildFixtures())) {
    writeFileSync(join(outDir, name), bytes);
    console.log(`wrote ${join(outDir, name)} (${bytes.length} bytes)`);
  }
}
