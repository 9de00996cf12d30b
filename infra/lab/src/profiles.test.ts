import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { HostName } from './experiment/types.js';
import {
  type DirectedLink,
  findLink,
  type LinkProfile,
  loadProfileFile,
  type ResolvedProfile,
  resolveProfile,
} from './profiles.js';

const file = loadProfileFile();
const SETS = ['clean', 'degraded-vn'] as const;
const resolved = Object.fromEntries(
  SETS.map((name) => [name, resolveProfile(file, name)]),
) as Record<(typeof SETS)[number], ResolvedProfile>;
const clean = resolved.clean;
const degraded = resolved['degraded-vn'];

type Pair = readonly [HostName, HostName];

/** The directed link, failing the test when the profile lacks it. */
function link(profile: ResolvedProfile, from: HostName, to: HostName): DirectedLink {
  const found = findLink(profile, from, to);
  assert.ok(found, `profile "${profile.name}" has no link ${from} -> ${to}`);
  return found;
}

/** Both directions of a pair. */
const directions = ([a, b]: Pair): Pair[] => [
  [a, b],
  [b, a],
];

/** Host pairs the four scenarios and the Redis control plane use. */
const NEEDED: Pair[] = [
  ['eu-client', 'sin'],
  ['sin', 'hcm'],
  ['hcm', 'vn-client'],
  ['eu-client', 'hcm'],
  ['vn-client', 'sin'],
  ['eu-client', 'ams'],
  ['ams', 'hcm'],
  ['core', 'ams'],
  ['core', 'sin'],
  ['core', 'hcm'],
];

/** Public paths that cross Vietnam's border, and the backbones to hcm. */
const CROSS_BORDER: Pair[] = [
  ['vn-client', 'sin'],
  ['vn-client', 'ams'],
  ['eu-client', 'hcm'],
];
const BACKBONE_TO_HCM: Pair[] = [
  ['ams', 'hcm'],
  ['sin', 'hcm'],
  ['core', 'hcm'],
];

test('the shipped links.json parses', () => {
  assert.equal(file.version, 1);
  assert.match(file.updated, /^\d{4}-\d{2}-\d{2}$/);
  assert.match(file.coreSite, /Amsterdam/);
  assert.deepEqual(Object.keys(file.profiles).sort(), ['clean', 'degraded-vn']);
  assert.equal(file.profiles['degraded-vn']?.extends, 'clean');
});

test('both sets resolve into symmetric, duplicate-free directed links', () => {
  for (const profile of Object.values(resolved)) {
    assert.equal(profile.version, file.version);
    assert.ok(profile.description.length > 0);
    assert.equal(profile.links.length, 2 * profile.entries.length);
    const keys = profile.links.map((l) => `${l.from}>${l.to}`);
    assert.equal(new Set(keys).size, keys.length, `duplicate directed link in ${profile.name}`);
    for (const l of profile.links) {
      assert.notEqual(l.from, l.to);
      assert.ok(findLink(profile, l.to, l.from), `${l.from}-${l.to} is one-way`);
    }
  }
  // degraded-vn inherits every clean pair and adds none.
  assert.equal(degraded.entries.length, clean.entries.length);
});

test('every pair the scenarios need exists in both directions in both sets', () => {
  for (const profile of Object.values(resolved)) {
    for (const pair of NEEDED) {
      for (const [from, to] of directions(pair)) link(profile, from, to);
    }
  }
  // vn-client <-> ams is not used by a scenario but must exist for the relay comparison.
  for (const [from, to] of directions(['vn-client', 'ams'])) link(clean, from, to);
});

test('core is a LAN hop from ams and the sin/hcm Redis round trip is 160-190 ms', () => {
  const lan = link(clean, 'core', 'ams');
  assert.equal(lan.kind, 'lan');
  assert.ok(lan.params.delayMs <= 1, `core-ams ${lan.params.delayMs} ms is not a LAN`);
  for (const node of ['sin', 'hcm'] as const) {
    const rtt = link(clean, node, 'core').params.delayMs + link(clean, 'core', node).params.delayMs;
    assert.ok(rtt >= 160 && rtt <= 190, `Redis RTT from ${node} is ${rtt} ms`);
    // Redis sits next to ams, so its paths equal the ams paths.
    assert.deepEqual(link(clean, 'core', node).params, link(clean, 'ams', node).params);
    assert.equal(link(clean, 'core', node).kind, 'backbone');
  }
});

test('backbone links lose less than the public paths they parallel', () => {
  const parallels: [backbone: Pair, publicPath: Pair][] = [
    [
      ['ams', 'sin'],
      ['eu-client', 'sin'],
    ],
    [
      ['core', 'sin'],
      ['eu-client', 'sin'],
    ],
    [
      ['ams', 'hcm'],
      ['eu-client', 'hcm'],
    ],
    [
      ['core', 'hcm'],
      ['eu-client', 'hcm'],
    ],
    [
      ['ams', 'hcm'],
      ['vn-client', 'ams'],
    ],
    [
      ['sin', 'hcm'],
      ['vn-client', 'sin'],
    ],
  ];
  for (const profile of Object.values(resolved)) {
    for (const [backbone, publicPath] of parallels) {
      for (const [bFrom, bTo] of directions(backbone)) {
        const b = link(profile, bFrom, bTo);
        assert.equal(b.kind, 'backbone');
        for (const [pFrom, pTo] of directions(publicPath)) {
          const p = link(profile, pFrom, pTo);
          assert.equal(p.kind, 'last-mile');
          assert.ok(
            b.params.lossPercent < p.params.lossPercent,
            `${profile.name}: ${bFrom}-${bTo} loses ${b.params.lossPercent}% >= ${pFrom}-${pTo} ${p.params.lossPercent}%`,
          );
          assert.ok(
            b.params.jitterMs <= p.params.jitterMs,
            `${profile.name}: ${bFrom}-${bTo} jitter`,
          );
        }
      }
    }
  }
});

test('degraded-vn degrades the cross-border public paths by +50-100 ms and 2-5% bursty loss', () => {
  for (const pair of CROSS_BORDER) {
    for (const [from, to] of directions(pair)) {
      const before = link(clean, from, to).params;
      const after = link(degraded, from, to).params;
      const added = after.delayMs - before.delayMs;
      assert.ok(added >= 50 && added <= 100, `${from}-${to} +${added} ms`);
      assert.ok(
        after.lossPercent >= 2 && after.lossPercent <= 5,
        `${from}-${to} ${after.lossPercent}%`,
      );
      assert.ok(after.lossPercent > before.lossPercent);
      assert.ok(after.lossBurstPackets > 1, `${from}-${to} loss is not bursty`);
      assert.ok(after.jitterMs > before.jitterMs, `${from}-${to} jitter did not grow`);
    }
  }
});

test('degraded-vn degrades the backbones to hcm much less than the public paths', () => {
  const publicAdded = Math.min(
    ...CROSS_BORDER.map(
      ([a, b]) => link(degraded, a, b).params.delayMs - link(clean, a, b).params.delayMs,
    ),
  );
  const publicLoss = Math.min(
    ...CROSS_BORDER.map(([a, b]) => link(degraded, a, b).params.lossPercent),
  );
  for (const pair of BACKBONE_TO_HCM) {
    for (const [from, to] of directions(pair)) {
      const before = link(clean, from, to).params;
      const after = link(degraded, from, to).params;
      const added = after.delayMs - before.delayMs;
      assert.ok(added > 0 && added < publicAdded / 2, `${from}-${to} +${added} ms`);
      assert.ok(after.lossPercent >= before.lossPercent && after.lossPercent < publicLoss);
    }
  }
  // The hcm Redis round trip stays far below a degraded public path.
  const redis =
    link(degraded, 'hcm', 'core').params.delayMs + link(degraded, 'core', 'hcm').params.delayMs;
  assert.ok(redis >= 160 && redis < 2 * link(degraded, 'eu-client', 'hcm').params.delayMs);
});

test('degraded-vn leaves the domestic and non-Vietnamese links as in clean', () => {
  const listed = file.profiles['degraded-vn']?.links ?? [];
  assert.ok(
    !listed.some((l) => [l.a, l.b].includes('vn-client') && [l.a, l.b].includes('hcm')),
    'degraded-vn must not list vn-client-hcm',
  );
  const unchanged: Pair[] = [
    ['vn-client', 'hcm'],
    ['core', 'ams'],
    ['ams', 'sin'],
    ['core', 'sin'],
    ['eu-client', 'ams'],
    ['eu-client', 'sin'],
  ];
  for (const pair of unchanged) {
    for (const [from, to] of directions(pair)) {
      assert.deepEqual(link(degraded, from, to), link(clean, from, to), `${from}-${to} changed`);
    }
  }
});

test('every link of every set cites a public source', () => {
  const entries: LinkProfile[] = Object.values(file.profiles).flatMap((set) => set.links);
  assert.ok(entries.length > 0);
  for (const { a, b, source } of entries) {
    assert.ok(source.citation.trim().length > 0, `${a}-${b} has no citation`);
    assert.ok(source.measured.trim().length > 0, `${a}-${b} does not say what was measured`);
    if (source.url !== undefined) assert.match(source.url, /^https?:\/\//, `${a}-${b} url`);
  }
});

const tmp = mkdtempSync(join(tmpdir(), 'geosfu-profiles-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `content` to a temp file and returns its path. */
function writeTemp(name: string, content: string): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

const params = { delayMs: 10 };
const source = { measured: 'test', citation: 'test' };
const set = (links: unknown[], extra: Record<string, unknown> = {}) => ({
  description: 'test',
  links,
  ...extra,
});
const fileWith = (profiles: Record<string, unknown>) =>
  JSON.stringify({ version: 1, updated: '2026-11-21', coreSite: 'test', profiles });

test('an unknown profile name is rejected with the known names', () => {
  assert.throws(
    () => resolveProfile(file, 'no-such-profile'),
    /unknown link profile "no-such-profile"; known: clean, degraded-vn/,
  );
  const path = writeTemp(
    'dangling.json',
    fileWith({ child: set([], { extends: 'missing-parent' }) }),
  );
  assert.throws(
    () => resolveProfile(loadProfileFile(path), 'child'),
    /unknown link profile "missing-parent"/,
  );
});

test('an extends cycle is rejected', () => {
  const entry = { a: 'ams', b: 'sin', kind: 'backbone', params, source };
  const path = writeTemp(
    'cycle.json',
    fileWith({
      first: set([entry], { extends: 'second' }),
      second: set([entry], { extends: 'first' }),
      self: set([entry], { extends: 'self' }),
    }),
  );
  const cyclic = loadProfileFile(path);
  assert.throws(
    () => resolveProfile(cyclic, 'first'),
    /link profile "first" extends itself via "first"/,
  );
  assert.throws(() => resolveProfile(cyclic, 'second'), /extends itself/);
  assert.throws(
    () => resolveProfile(cyclic, 'self'),
    /link profile "self" extends itself via "self"/,
  );
});

test('a bad file is rejected with the path and the reason', () => {
  const invalidJson = writeTemp('invalid.json', '{ "version": 1, ');
  assert.throws(
    () => loadProfileFile(invalidJson),
    (error: Error) =>
      error.message.startsWith(`cannot read link profiles ${invalidJson}:`) &&
      /JSON/.test(error.message),
  );

  const missing = join(tmp, 'missing.json');
  assert.throws(
    () => loadProfileFile(missing),
    /cannot read link profiles .*missing\.json: .*ENOENT/,
  );

  const negative = writeTemp(
    'negative.json',
    fileWith({
      clean: set([{ a: 'ams', b: 'sin', kind: 'backbone', params: { delayMs: -5 }, source }]),
    }),
  );
  assert.throws(
    () => loadProfileFile(negative),
    (error: Error) =>
      error.message.startsWith(`invalid link profiles ${negative}:`) &&
      /delayMs/.test(error.message),
  );

  const noCitation = writeTemp(
    'no-citation.json',
    fileWith({
      clean: set([
        { a: 'ams', b: 'sin', kind: 'backbone', params, source: { measured: 'x', citation: '' } },
      ]),
    }),
  );
  assert.throws(() => loadProfileFile(noCitation), /invalid link profiles .*citation/s);

  const loop = writeTemp(
    'loop.json',
    fileWith({ clean: set([{ a: 'ams', b: 'ams', kind: 'lan', params, source }]) }),
  );
  assert.throws(() => resolveProfile(loadProfileFile(loop), 'clean'), /link ams-ams loops/);
});
