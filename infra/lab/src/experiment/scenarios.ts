import type { HostName, NodeRegion, Peer, ScenarioDefinition, ScenarioId } from './types.js';

/** The routes the experiment compares (issue: Amsterdam / Singapore / Ho Chi Minh City). */
export const SCENARIOS: readonly ScenarioDefinition[] = [
  {
    id: 1,
    title: 'EU → Singapore node ⇄ relay ⇄ HCM node → VN',
    eu: 'sin',
    vn: 'hcm',
    expected: { eu: 'sin', vn: 'hcm' },
    relayed: true,
  },
  {
    id: 2,
    title: 'EU → HCM node → VN (both on the far node)',
    eu: 'hcm',
    vn: 'hcm',
    expected: { eu: 'hcm', vn: 'hcm' },
    relayed: false,
  },
  {
    id: 3,
    title: 'EU → Singapore node → VN (both on the hub)',
    eu: 'sin',
    vn: 'sin',
    expected: { eu: 'sin', vn: 'sin' },
    relayed: false,
  },
  {
    id: 4,
    title: 'EU → Amsterdam node ⇄ relay ⇄ HCM node → VN (GeoIP routing decides)',
    eu: 'route',
    vn: 'route',
    expected: { eu: 'ams', vn: 'hcm' },
    relayed: true,
  },
];

export const CLIENT_HOST: Record<Peer, HostName> = { eu: 'eu-client', vn: 'vn-client' };

export function scenarioById(id: number): ScenarioDefinition {
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`unknown scenario ${id}; scenarios are 1-${SCENARIOS.length}`);
  return s;
}

/** Parses `all` or a comma list such as `1,4`. */
export function parseScenarioList(text: string): ScenarioDefinition[] {
  if (text === 'all') return [...SCENARIOS];
  const ids = text.split(',').map((s) => Number(s.trim()));
  if (ids.some((n) => !Number.isInteger(n))) {
    throw new Error(`--scenario takes "all" or a list such as "1,4", not "${text}"`);
  }
  return [...new Set(ids)].map(scenarioById);
}

/** Hosts a stream crosses from `from`'s client to the other peer's client. */
export function mediaPath(from: Peer, nodes: { eu: NodeRegion; vn: NodeRegion }): HostName[] {
  const to: Peer = from === 'eu' ? 'vn' : 'eu';
  const path: HostName[] = [CLIENT_HOST[from], nodes[from]];
  if (nodes[to] !== nodes[from]) path.push(nodes[to]);
  path.push(CLIENT_HOST[to]);
  return path;
}

export type { ScenarioId };
