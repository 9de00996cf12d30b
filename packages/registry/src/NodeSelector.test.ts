import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type GeoPoint, regionLocation, SfuError } from '@geosfu/common';
import type { NodeRecord } from './NodeRecord.js';
import { NodeSelector, selectNode } from './NodeSelector.js';

function node(
  id: string,
  region: string,
  options: Partial<Pick<NodeRecord, 'state' | 'capacity'>> & {
    participants?: number;
    cpu?: number;
  } = {},
): NodeRecord {
  const where = regionLocation(region) as GeoPoint;
  return {
    id,
    region,
    latitude: where.latitude,
    longitude: where.longitude,
    url: `http://${id}.test`,
    signalUrl: `ws://${id}.test/v1/signal`,
    state: options.state ?? 'active',
    capacity: options.capacity ?? 100,
    load: {
      participants: options.participants ?? 0,
      publishedTracks: 0,
      cpu: options.cpu ?? 0,
      forwardedBitrate: 0,
    },
    version: 'test',
    startedAt: 1,
    updatedAt: 1,
  };
}

const AMSTERDAM_CALLER = { latitude: 52.374, longitude: 4.8897 };
const HCM_CALLER = { latitude: 10.8231, longitude: 106.6297 };
const SINGAPORE_CALLER = { latitude: 1.2897, longitude: 103.8501 };
const options = { defaultRegion: 'ams' };

const isCode = (code: string, message?: RegExp) => (e: unknown) =>
  e instanceof SfuError && e.code === code && (!message || message.test(e.message));

describe('NodeSelector', () => {
  const ams = node('ams-1', 'ams');
  const sin = node('sin-1', 'sin');
  const hcm = node('hcm-1', 'hcm');
  const cluster = [ams, sin, hcm];

  test('nearest node by great-circle distance', () => {
    const s = selectNode(cluster, { location: HCM_CALLER }, options);
    assert.equal(s.node.id, 'hcm-1');
    assert.equal(s.reason, 'nearest');
    assert.ok(s.distanceKm !== null && s.distanceKm < 10, `${s.distanceKm}`);
    assert.equal(selectNode(cluster, { location: SINGAPORE_CALLER }, options).node.id, 'sin-1');
    assert.equal(selectNode(cluster, { location: AMSTERDAM_CALLER }, options).node.id, 'ams-1');
  });

  test('draining and full nodes are skipped', () => {
    const nodes = [ams, sin, node('hcm-1', 'hcm', { state: 'draining' })];
    assert.equal(selectNode(nodes, { location: HCM_CALLER }, options).node.id, 'sin-1');
    const full = [ams, node('sin-1', 'sin', { participants: 100 }), hcm];
    assert.equal(selectNode(full, { location: SINGAPORE_CALLER }, options).node.id, 'hcm-1');
    const zero = [node('hcm-1', 'hcm', { capacity: 0 }), sin];
    assert.equal(selectNode(zero, { location: HCM_CALLER }, options).node.id, 'sin-1');
  });

  test('within the nearby radius the less loaded node wins', () => {
    const busyAms = node('ams-1', 'ams', { participants: 80 });
    const fra = node('fra-1', 'fra', { participants: 10 }); // ~360 km from Amsterdam
    const s = selectNode([busyAms, fra, sin], { location: AMSTERDAM_CALLER }, options);
    assert.equal(s.node.id, 'fra-1');
    assert.equal(s.reason, 'least-loaded-nearby');
    assert.ok(s.distanceKm !== null && s.distanceKm > 300 && s.distanceKm < 420);
    // Load is relative to capacity.
    const bigAms = node('ams-1', 'ams', { participants: 80, capacity: 1000 });
    assert.equal(
      selectNode([bigAms, fra], { location: AMSTERDAM_CALLER }, options).node.id,
      'ams-1',
    );
    // Same utilization: CPU decides.
    const a = node('ams-1', 'ams', { participants: 10, cpu: 0.9 });
    const b = node('ams-2', 'ams', { participants: 10, cpu: 0.2 });
    assert.equal(selectNode([a, b], { location: AMSTERDAM_CALLER }, options).node.id, 'ams-2');
    // Outside the radius, distance wins over load: Singapore is 1 100 km from HCM.
    const busyHcm = node('hcm-1', 'hcm', { participants: 99 });
    assert.equal(selectNode([busyHcm, sin], { location: HCM_CALLER }, options).node.id, 'hcm-1');
    // A radius of 0 turns load balancing off.
    assert.equal(
      selectNode([busyAms, fra], { location: AMSTERDAM_CALLER }, { ...options, nearbyRadiusKm: 0 })
        .node.id,
      'ams-1',
    );
  });

  test('a caller without a location gets the default region', () => {
    const s = selectNode(cluster, {}, { defaultRegion: 'sin' });
    assert.equal(s.node.id, 'sin-1');
    assert.equal(s.reason, 'default-region');
    const custom = selectNode(
      cluster,
      { location: undefined },
      { defaultRegion: 'lab', defaultLocation: HCM_CALLER },
    );
    assert.equal(custom.node.id, 'hcm-1');
    // A default region with no known location: load alone decides, distance unknown.
    const loaded = [node('ams-1', 'ams', { participants: 5 }), sin];
    const unknown = selectNode(loaded, {}, { defaultRegion: 'local' });
    assert.equal(unknown.node.id, 'sin-1');
    assert.equal(unknown.distanceKm, null);
    assert.equal(unknown.reason, 'default-region');
  });

  test('pins need the grant', () => {
    assert.throws(
      () => selectNode(cluster, { pin: { region: 'sin' } }, options),
      isCode('PERMISSION_DENIED', /canPinRegion/),
    );
    assert.throws(
      () => selectNode(cluster, { pin: { nodeId: 'sin-1' }, canPinRegion: false }, options),
      isCode('PERMISSION_DENIED'),
    );
  });

  test('pinned region and pinned node', () => {
    const sin2 = node('sin-2', 'sin', { participants: 50 });
    const region = selectNode(
      [...cluster, sin2],
      { location: AMSTERDAM_CALLER, pin: { region: 'sin' }, canPinRegion: true },
      options,
    );
    assert.equal(region.node.id, 'sin-1', 'the less loaded of the region');
    assert.equal(region.reason, 'pinned-region');
    assert.ok(region.distanceKm !== null && region.distanceKm > 10_000);

    const pinned = selectNode(
      cluster,
      { location: AMSTERDAM_CALLER, pin: { nodeId: 'hcm-1' }, canPinRegion: true },
      options,
    );
    assert.equal(pinned.node.id, 'hcm-1');
    assert.equal(pinned.reason, 'pinned-node');
  });

  test('a pin that cannot be served says why', () => {
    const nodes = [
      ams,
      node('sin-1', 'sin', { state: 'draining' }),
      node('hcm-1', 'hcm', { participants: 100 }),
    ];
    const pin = (p: { region: string } | { nodeId: string }) => () =>
      selectNode(nodes, { pin: p, canPinRegion: true }, options);
    assert.throws(pin({ nodeId: 'nope' }), isCode('NO_NODE_AVAILABLE', /nope is not registered/));
    assert.throws(pin({ nodeId: 'sin-1' }), isCode('NO_NODE_AVAILABLE', /sin-1 is draining/));
    assert.throws(
      pin({ nodeId: 'hcm-1' }),
      isCode('NO_NODE_AVAILABLE', /hcm-1 is full \(100\/100/),
    );
    assert.throws(
      pin({ region: 'syd' }),
      isCode('NO_NODE_AVAILABLE', /syd has no registered node/),
    );
    assert.throws(pin({ region: 'sin' }), isCode('NO_NODE_AVAILABLE', /1 draining, 0 full/));
    assert.throws(pin({ region: 'hcm' }), isCode('NO_NODE_AVAILABLE', /0 draining, 1 full/));
  });

  test('nothing available', () => {
    assert.throws(
      () => selectNode([], { location: HCM_CALLER }, options),
      isCode('NO_NODE_AVAILABLE', /no node is registered/),
    );
    const nodes = [
      node('a', 'ams', { state: 'draining' }),
      node('b', 'sin', { participants: 100 }),
    ];
    assert.throws(
      () => selectNode(nodes, { location: HCM_CALLER }, options),
      isCode('NO_NODE_AVAILABLE', /1 draining, 1 full/),
    );
  });

  test('NodeSelector reads the current list from its source', () => {
    let nodes: NodeRecord[] = [ams];
    const selector = new NodeSelector({ list: () => nodes }, { defaultRegion: 'hcm' });
    assert.equal(selector.select().node.id, 'ams-1');
    nodes = [ams, hcm];
    assert.equal(selector.select().node.id, 'hcm-1');
    assert.equal(selector.select({ location: AMSTERDAM_CALLER }).reason, 'nearest');
    assert.throws(
      () => new NodeSelector({ list: () => [] }, { defaultRegion: 'ams', nearbyRadiusKm: -1 }),
      isCode('CONFIG_INVALID'),
    );
  });

  describe('room affinity', () => {
    const a1 = node('ams-1', 'ams', { participants: 30 });
    const a2 = node('ams-2', 'ams', { participants: 5 });
    const fra = node('fra-1', 'fra', { participants: 0 });

    test('a room goes to the node that hosts it, though another is less loaded', () => {
      const s = selectNode(
        [a1, a2, sin],
        { location: AMSTERDAM_CALLER, roomHosts: new Map([['ams-1', 3]]) },
        options,
      );
      assert.equal(s.node.id, 'ams-1');
      assert.equal(s.reason, 'room-affinity');
      // Without hosts (a new room), load decides as before.
      const fresh = selectNode([a1, a2, sin], { location: AMSTERDAM_CALLER }, options);
      assert.equal(fresh.node.id, 'ams-2');
      assert.equal(fresh.reason, 'nearest', 'same place: the nearest, by load');
    });

    test('choices: how many nodes were equally near, so whether hosts are worth a read', () => {
      assert.equal(selectNode(cluster, { location: HCM_CALLER }, options).choices, 1);
      assert.equal(selectNode([a1, a2, sin], { location: AMSTERDAM_CALLER }, options).choices, 2);
      const pinned = selectNode(
        [a1, a2],
        { pin: { nodeId: 'ams-1' }, canPinRegion: true },
        options,
      );
      assert.equal(pinned.choices, 1);
    });

    test('the plain reason stays when the host is the node chosen anyway', () => {
      const s = selectNode(
        [a1, a2],
        { location: AMSTERDAM_CALLER, roomHosts: new Map([['ams-2', 1]]) },
        options,
      );
      assert.equal(s.node.id, 'ams-2');
      assert.notEqual(s.reason, 'room-affinity');
    });

    test('the host with most of the room wins; a host far away does not pull the caller', () => {
      const hosts = new Map([
        ['ams-2', 2],
        ['ams-1', 7],
        ['sin-1', 40],
      ]);
      const s = selectNode(
        [a1, a2, sin],
        { location: AMSTERDAM_CALLER, roomHosts: hosts },
        options,
      );
      assert.equal(s.node.id, 'ams-1');
      const vn = selectNode(
        [a1, a2, sin, hcm],
        { location: HCM_CALLER, roomHosts: hosts },
        options,
      );
      assert.equal(vn.node.id, 'hcm-1', 'Singapore hosts the room but HCM is nearest');
      assert.equal(vn.reason, 'nearest');
    });

    test('a host that is draining or full is skipped', () => {
      const hosts = new Map([['ams-1', 3]]);
      for (const bad of [
        node('ams-1', 'ams', { state: 'draining' }),
        node('ams-1', 'ams', { participants: 100 }),
      ]) {
        const s = selectNode([bad, a2], { location: AMSTERDAM_CALLER, roomHosts: hosts }, options);
        assert.equal(s.node.id, 'ams-2');
      }
    });

    test('nearby counts as the region chosen: a Frankfurt host keeps an Amsterdam caller', () => {
      const s = selectNode(
        [a1, fra],
        { location: AMSTERDAM_CALLER, roomHosts: new Map([['ams-1', 1]]) },
        options,
      );
      assert.equal(s.node.id, 'ams-1');
      assert.equal(s.reason, 'room-affinity');
    });

    test('pins still win: a pinned node as asked, a pinned region with affinity inside it', () => {
      const hosts = new Map([['ams-1', 3]]);
      const pinnedNode = selectNode(
        [a1, a2],
        { pin: { nodeId: 'ams-2' }, canPinRegion: true, roomHosts: hosts },
        options,
      );
      assert.equal(pinnedNode.node.id, 'ams-2');
      assert.equal(pinnedNode.reason, 'pinned-node');
      const pinnedRegion = selectNode(
        [a1, a2, sin],
        {
          location: AMSTERDAM_CALLER,
          pin: { region: 'sin' },
          canPinRegion: true,
          roomHosts: hosts,
        },
        options,
      );
      assert.equal(pinnedRegion.node.id, 'sin-1');
      const inRegion = selectNode(
        [a1, a2, sin],
        { pin: { region: 'ams' }, canPinRegion: true, roomHosts: hosts },
        options,
      );
      assert.equal(inRegion.node.id, 'ams-1');
      assert.equal(inRegion.reason, 'room-affinity');
    });
  });
});
