/**
 * Link profiles of the WAN lab: one-way delay, jitter, loss and an optional rate limit per
 * link between two lab hosts, with the public measurement each number comes from. The file is
 * `infra/lab/profiles/links.json` (versioned with the code; bump `version` when a number
 * changes so that reports say which numbers they ran with).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { HostName } from './experiment/types.js';

export const HOST_NAMES = ['core', 'ams', 'sin', 'hcm', 'eu-client', 'vn-client'] as const;
const Host = z.enum(HOST_NAMES);

export const LinkParams = z.strictObject({
  /** Mean one-way delay, ms. */
  delayMs: z.number().min(0).max(5_000),
  /** Standard deviation of the time-correlated delay variation, ms. */
  jitterMs: z.number().min(0).max(1_000).default(0),
  /** How long a jitter excursion lasts (Ornstein-Uhlenbeck time constant), ms. */
  jitterCorrelationMs: z.number().positive().max(60_000).default(50),
  /** Long-run share of packets lost, percent. */
  lossPercent: z.number().min(0).max(100).default(0),
  /** Mean length of a loss burst in packets; 1 = independent (Bernoulli) loss. */
  lossBurstPackets: z.number().min(1).max(1_000).default(1),
  /** Bottleneck rate, kbit/s; absent = unlimited. */
  rateKbps: z.number().positive().max(10_000_000).optional(),
  /** Tail-drop bound of the rate limiter's queue, ms of data at `rateKbps`. */
  queueMs: z.number().positive().max(10_000).default(200),
});
export type LinkParams = z.output<typeof LinkParams>;

export const LinkSource = z.strictObject({
  /** What the public measurement says, e.g. 'Amsterdam-Singapore RTT 155-165 ms (median 158)'. */
  measured: z.string().min(1),
  /** Who measured it, where, when: enough to find it again. */
  citation: z.string().min(1),
  url: z.string().url().optional(),
});

export const LinkProfile = z.strictObject({
  a: Host,
  b: Host,
  /** backbone: between datacentres; last-mile: a client's public path; lan: same site. */
  kind: z.enum(['backbone', 'last-mile', 'lan']),
  /** Both directions, unless `bToA` overrides some fields for b -> a. */
  params: LinkParams,
  bToA: LinkParams.partial().optional(),
  source: LinkSource,
  note: z.string().optional(),
});
export type LinkProfile = z.output<typeof LinkProfile>;

export const ProfileSet = z.strictObject({
  description: z.string(),
  /** Start from this set and replace the links listed here (matched by unordered host pair). */
  extends: z.string().optional(),
  links: z.array(LinkProfile),
});

export const ProfileFile = z.strictObject({
  version: z.number().int().positive(),
  updated: z.string(),
  /** Where Redis (the `core` host) sits, for the report. */
  coreSite: z.string(),
  profiles: z.record(z.string(), ProfileSet),
});
export type ProfileFile = z.output<typeof ProfileFile>;

/** One direction of a link, resolved. */
export interface DirectedLink {
  from: HostName;
  to: HostName;
  kind: LinkProfile['kind'];
  params: LinkParams;
}

export interface ResolvedProfile {
  name: string;
  version: number;
  description: string;
  /** Every directed link of the set; pairs absent here cannot talk to each other. */
  links: DirectedLink[];
  /** The profile entries the links came from (with their sources), for the report. */
  entries: LinkProfile[];
}

export const DEFAULT_PROFILES_FILE = new URL('../profiles/links.json', import.meta.url);

export function loadProfileFile(path: string | URL = DEFAULT_PROFILES_FILE): ProfileFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read link profiles ${String(path)}: ${(error as Error).message}`);
  }
  const parsed = ProfileFile.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`invalid link profiles ${String(path)}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);

/** Resolves `name` (following `extends`) into directed links. */
export function resolveProfile(file: ProfileFile, name: string): ResolvedProfile {
  const chain: string[] = [];
  for (let at: string | undefined = name; at !== undefined; at = file.profiles[at]?.extends) {
    if (!file.profiles[at]) {
      throw new Error(
        `unknown link profile "${at}"; known: ${Object.keys(file.profiles).join(', ')}`,
      );
    }
    if (chain.includes(at)) throw new Error(`link profile "${name}" extends itself via "${at}"`);
    chain.push(at);
  }
  const byPair = new Map<string, LinkProfile>();
  for (const setName of chain.reverse()) {
    for (const link of file.profiles[setName]?.links ?? []) {
      if (link.a === link.b)
        throw new Error(`link profile "${setName}": link ${link.a}-${link.b} loops`);
      byPair.set(pairKey(link.a, link.b), link);
    }
  }
  const links: DirectedLink[] = [];
  for (const entry of byPair.values()) {
    links.push({ from: entry.a, to: entry.b, kind: entry.kind, params: entry.params });
    links.push({
      from: entry.b,
      to: entry.a,
      kind: entry.kind,
      params: { ...entry.params, ...entry.bToA },
    });
  }
  const set = file.profiles[name];
  return {
    name,
    version: file.version,
    description: set?.description ?? '',
    links,
    entries: [...byPair.values()],
  };
}

/** The directed link from `from` to `to`, or undefined when the profile has none. */
export function findLink(
  profile: ResolvedProfile,
  from: HostName,
  to: HostName,
): DirectedLink | undefined {
  return profile.links.find((l) => l.from === from && l.to === to);
}
