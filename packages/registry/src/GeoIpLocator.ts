import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  FileWatch,
  type GeoPoint,
  InvalidStateError,
  type Logger,
  SfuError,
  silentLogger,
  TypedEmitter,
} from '@geosfu/common';
import { open, type Reader, type Response } from 'maxmind';
import { z } from 'zod';
import { ipFamily, isPrivateIp, normalizeIp } from './ip.js';

/** Where an address is, as far as the database knows. */
export type GeoLookup =
  | {
      source: 'geoip';
      latitude: number;
      longitude: number;
      /** ISO 3166-1 alpha-2, when the database has it. */
      country?: string;
      /** English city name, when the database has it. */
      city?: string;
    }
  /** Private, loopback, link-local or unspecified: the caller is on our own network. */
  | { source: 'private' }
  /** Not in the database, or in it without coordinates (country-level entries). */
  | { source: 'unknown'; country?: string };

export type GeoIpLocatorEvents = {
  /** A database file changed on disk and the new one is in use. */
  reloaded: [path: string];
  /** A changed file did not open (half-written?); the previous one stays in use. */
  reloadFailed: [path: string, error: Error];
};

export interface GeoIpLocatorOptions {
  /**
   * One MMDB path, a list of them (ip-location-db ships IPv4 and IPv6 in separate files),
   * or a pattern with `*` or `{a,b}` in the file name: `/data/dbip-city-ipv{4,6}.mmdb`.
   * Addresses are looked up in the files whose tree can hold their family, in order.
   */
  paths: string | readonly string[];
  /** How often files are checked for replacement, ms. Default 5 000; 100..600 000. */
  pollIntervalMs?: number;
  logger?: Logger;
}

export const DEFAULT_GEOIP_POLL_MS = 5_000;
/** Per-reader LRU cache of decoded records. */
const CACHE_SIZE = 10_000;

// The two record layouts we accept. Fields are optional because real databases omit them
// for many networks; anything of the wrong type makes the record "unknown", never a crash.
const GeoIp2Layout = z.object({
  location: z.object({ latitude: z.number(), longitude: z.number() }).optional(),
  country: z.object({ iso_code: z.string() }).optional(),
  registered_country: z.object({ iso_code: z.string() }).optional(),
  city: z.object({ names: z.object({ en: z.string() }) }).optional(),
});
const FlatLayout = z.object({
  latitude: z.number(),
  longitude: z.number(),
  country_code: z.string().optional(),
  city: z.string().optional(),
});

interface Database {
  path: string;
  reader: Reader<Response>;
  ipVersion: 4 | 6;
  /** The file's identity when it was read: a change means "reload". */
  signature: string;
}

/**
 * Locates IP addresses with MaxMind DB files: MaxMind GeoIP2/GeoLite2-City and the flat
 * DB-IP Lite layout of ip-location-db.
 *
 * A replaced file is picked up without a restart (a directory watch plus stat polling as a
 * safety net); a file that does not open, such as one still being written, leaves the
 * previous database in use and is tried again when it changes.
 */
export class GeoIpLocator extends TypedEmitter<GeoIpLocatorEvents> {
  readonly #patterns: readonly string[];
  readonly #pollIntervalMs: number;
  readonly #logger: Logger;
  #databases: Database[] = [];
  /** What a lookup walks, per address family (see lookup), rebuilt with #databases. */
  #walk: { 4: Database[]; 6: Database[] } = { 4: [], 6: [] };
  /** Signatures of files that failed to open, so a broken file is not retried every poll. */
  readonly #failed = new Map<string, string>();
  /** Created once the databases are open; reloads replaced files. */
  #watch: FileWatch | undefined;
  #closed = false;

  private constructor(options: GeoIpLocatorOptions) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'geoip' });
    super((event, error) => logger.error({ err: error, event }, 'geoip listener threw'));
    this.#logger = logger;
    const paths = typeof options.paths === 'string' ? [options.paths] : [...options.paths];
    if (paths.length === 0) {
      throw new SfuError('CONFIG_INVALID', 'no GeoIP database path given');
    }
    this.#patterns = paths.map((p) => resolve(p));
    const poll = options.pollIntervalMs ?? DEFAULT_GEOIP_POLL_MS;
    if (!Number.isInteger(poll) || poll < 100 || poll > 600_000) {
      throw new SfuError(
        'CONFIG_INVALID',
        `GeoIP pollIntervalMs ${poll} must be an integer in 100..600000`,
      );
    }
    this.#pollIntervalMs = poll;
  }

  /**
   * Opens every database. Throws `SfuError('CONFIG_INVALID')` when a path matches no file or
   * a file is not a MaxMind DB, saying which.
   */
  static async open(options: GeoIpLocatorOptions): Promise<GeoIpLocator> {
    const locator = new GeoIpLocator(options);
    const files = await locator.#expand();
    for (const path of files) {
      try {
        locator.#databases.push(await openDatabase(path));
        locator.#index();
      } catch (error) {
        throw new SfuError(
          'CONFIG_INVALID',
          `cannot open GeoIP database ${path}: ${(error as Error).message}; point SFU_GEOIP_DB at a GeoLite2-City or DB-IP City Lite .mmdb file`,
          { cause: error },
        );
      }
    }
    locator.#watch = new FileWatch({
      dirs: locator.#patterns.map((p) => dirname(p)),
      pollIntervalMs: locator.#pollIntervalMs,
      check: () => locator.#check(),
      label: 'GeoIP',
      logger: locator.#logger,
    });
    locator.#logger.info(
      {
        databases: locator.#databases.map((d) => ({
          path: d.path,
          type: d.reader.metadata.databaseType,
          ipVersion: d.ipVersion,
        })),
      },
      'GeoIP databases opened',
    );
    return locator;
  }

  /** The files in use, with their database type and build time. */
  get databases(): readonly { path: string; type: string; ipVersion: 4 | 6; builtAt: Date }[] {
    return this.#databases.map((d) => ({
      path: d.path,
      type: d.reader.metadata.databaseType,
      ipVersion: d.ipVersion,
      builtAt: d.reader.metadata.buildEpoch,
    }));
  }

  /**
   * Where `address` is. Throws `SfuError('INVALID_ARGUMENT')` for something that is not an
   * IP address; never throws for a valid one.
   */
  lookup(address: string): GeoLookup {
    if (this.#closed) throw new InvalidStateError('the GeoIP locator is closed');
    const ip = typeof address === 'string' ? normalizeIp(address) : undefined;
    if (ip === undefined) {
      throw new SfuError(
        'INVALID_ARGUMENT',
        `${JSON.stringify(String(address).slice(0, 64))} is not an IP address`,
      );
    }
    const family = ipFamily(ip);
    if (isPrivateIp(ip, family)) return { source: 'private' };
    let countryOnly: string | undefined;
    for (const db of this.#walk[family]) {
      let record: unknown;
      try {
        record = db.reader.get(ip);
      } catch (error) {
        // A corrupt database region: say so once per lookup and try the next file.
        this.#logger.warn({ err: error, path: db.path }, 'GeoIP lookup failed');
        continue;
      }
      if (record === null || record === undefined) continue;
      const place = cachedLookup(record);
      if (place.source === 'geoip') return place;
      if (place.source === 'unknown') countryOnly ??= place.country;
    }
    return countryOnly === undefined
      ? { source: 'unknown' }
      : { source: 'unknown', country: countryOnly };
  }

  /** Convenience: the coordinates of `address`, or undefined when it cannot be placed. */
  locate(address: string): GeoPoint | undefined {
    const place = this.lookup(address);
    if (place.source !== 'geoip') return undefined;
    let point = points.get(place);
    if (point === undefined) {
      point = Object.freeze({ latitude: place.latitude, longitude: place.longitude });
      points.set(place, point);
    }
    return point;
  }

  /**
   * Checks the files now and reloads those that changed (normally done by the watcher and
   * the poll). Resolves when done; never rejects.
   */
  checkForUpdates(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return this.#watch?.checkNow() ?? this.#check();
  }

  /** Stops watching (the watch and the poll keep a process alive until then). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#watch?.close();
  }

  async #check(): Promise<void> {
    let files: string[];
    try {
      files = await this.#expand();
    } catch (error) {
      this.#logger.warn({ err: error }, 'GeoIP database files are gone; keeping the loaded ones');
      return;
    }
    const next: Database[] = [];
    for (const path of files) {
      const current = this.#databases.find((d) => d.path === path);
      let signature: string;
      try {
        signature = await fileSignature(path);
      } catch (error) {
        // Vanished between listing and stat (mid-rename): keep what we have.
        if (current) next.push(current);
        this.#logger.debug({ err: error, path }, 'GeoIP file not readable right now');
        continue;
      }
      if (current?.signature === signature || this.#failed.get(path) === signature) {
        if (current) next.push(current);
        continue;
      }
      try {
        const db = await openDatabase(path);
        this.#failed.delete(path);
        next.push(db);
        this.#logger.info(
          { path, type: db.reader.metadata.databaseType },
          'GeoIP database reloaded',
        );
        if (!this.#closed) this.safeEmit('reloaded', path);
      } catch (error) {
        this.#failed.set(path, signature);
        if (current) next.push(current);
        this.#logger.warn(
          { err: error, path },
          'GeoIP database changed but does not open; keeping the previous one',
        );
        if (!this.#closed) this.safeEmit('reloadFailed', path, error as Error);
      }
    }
    // Keep databases whose file disappeared: a lookup answer beats none.
    for (const db of this.#databases)
      if (!next.includes(db) && !files.includes(db.path)) next.push(db);
    if (!this.#closed) {
      this.#databases = next;
      this.#index();
    }
  }

  /**
   * IPv4 first in IPv4-only trees, then in IPv6 trees (at ::/96); IPv6 only in IPv6 trees:
   * walking an IPv4 tree with an IPv6 address would match its first 32 bits.
   */
  #index(): void {
    const v4 = this.#databases.filter((d) => d.ipVersion === 4);
    const v6 = this.#databases.filter((d) => d.ipVersion === 6);
    this.#walk = { 4: [...v4, ...v6], 6: v6 };
  }

  /** The files the configured paths and patterns name, in order. */
  async #expand(): Promise<string[]> {
    const out: string[] = [];
    for (const pattern of this.#patterns) {
      const name = basename(pattern);
      if (!/[*{]/.test(name)) {
        out.push(pattern);
        continue;
      }
      const dir = dirname(pattern);
      const regex = patternToRegExp(name);
      const matches = (await readdir(dir)).filter((f) => regex.test(f)).sort();
      if (matches.length === 0) {
        throw new SfuError('CONFIG_INVALID', `GeoIP database pattern ${pattern} matches no file`);
      }
      for (const match of matches) out.push(join(dir, match));
    }
    return [...new Set(out)];
  }
}

async function openDatabase(path: string): Promise<Database> {
  const signature = await fileSignature(path);
  const reader = await open<Response>(path, { cache: { max: CACHE_SIZE } });
  const { ipVersion, searchTreeSize } = reader.metadata;
  if (ipVersion !== 4 && ipVersion !== 6) throw new Error(`unsupported ip_version ${ipVersion}`);
  // A truncated file usually fails to find its metadata; one cut inside the data section
  // can still parse, so check that the tree fits and that a lookup walks it without error.
  const { size } = await stat(path);
  if (searchTreeSize + 16 > size) throw new Error('the file is shorter than its search tree');
  reader.get(ipVersion === 4 ? '1.1.1.1' : '2001:4860::1');
  return { path, reader, ipVersion, signature };
}

async function fileSignature(path: string): Promise<string> {
  const s = await stat(path);
  if (!s.isFile()) throw new Error(`${path} is not a file`);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

function patternToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') out += '[^/]*';
    else if (c === '{') {
      const end = pattern.indexOf('}', i);
      if (end === -1) throw new SfuError('CONFIG_INVALID', `unclosed "{" in ${pattern}`);
      const options = pattern
        .slice(i + 1, end)
        .split(',')
        .map(escapeRegExp);
      out += `(?:${options.join('|')})`;
      i = end;
    } else out += escapeRegExp(c);
  }
  return new RegExp(`^${out}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Reads either record layout into a lookup answer; invalid shapes count as unknown. */
/**
 * What a database record says, parsed once per record object: maxmind's reader caches the
 * records it decoded, so a busy network's lookups share one (two schema parses and an
 * object per lookup were a third of `npm run bench -- route`'s GeoIP time, most of it GC).
 * The results are frozen: every caller of that network gets the same one.
 */
const parsed = new WeakMap<object, GeoLookup>();
/** The coordinates of a cached lookup, for `locate`. */
const points = new WeakMap<GeoLookup, GeoPoint>();

function cachedLookup(record: unknown): GeoLookup {
  if (typeof record !== 'object' || record === null) return toLookup(record);
  let lookup = parsed.get(record);
  if (lookup === undefined) {
    lookup = Object.freeze(toLookup(record));
    parsed.set(record, lookup);
  }
  return lookup;
}

function toLookup(record: unknown): GeoLookup {
  const flat = FlatLayout.safeParse(record);
  if (flat.success) {
    const { latitude, longitude, country_code, city } = flat.data;
    return place(latitude, longitude, country_code, city);
  }
  const geoip2 = GeoIp2Layout.safeParse(record);
  if (!geoip2.success) return { source: 'unknown' };
  const { location, country, registered_country, city } = geoip2.data;
  const countryCode = country?.iso_code ?? registered_country?.iso_code;
  if (!location) {
    return countryCode === undefined
      ? { source: 'unknown' }
      : { source: 'unknown', country: countryCode };
  }
  return place(location.latitude, location.longitude, countryCode, city?.names.en);
}

function place(
  latitude: number,
  longitude: number,
  country: string | undefined,
  city: string | undefined,
): GeoLookup {
  if (Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return { source: 'unknown' };
  return {
    source: 'geoip',
    // Single-precision floats (ip-location-db) read back as 52.37400054931641: round to
    // ~10 m, far finer than any GeoIP database is accurate.
    latitude: Math.round(latitude * 1e4) / 1e4,
    longitude: Math.round(longitude * 1e4) / 1e4,
    ...(country ? { country } : {}),
    ...(city ? { city } : {}),
  };
}
