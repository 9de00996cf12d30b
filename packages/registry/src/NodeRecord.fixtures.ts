/**
 * A node record for unit tests (registry and relay): an active node in ams with nothing on
 * it. Tests that need another region, address or start time say so in `overrides`.
 */
import type { NodeRecordInput } from './NodeRecord.js';

export function nodeRecordFixture(
  id: string,
  overrides: Partial<NodeRecordInput> = {},
): NodeRecordInput {
  return {
    id,
    region: 'ams',
    latitude: 52.37,
    longitude: 4.9,
    url: `https://${id}.example.com`,
    signalUrl: `wss://${id}.example.com/v1/signal`,
    state: 'active',
    capacity: 50,
    load: { participants: 0, publishedTracks: 0, cpu: 0, forwardedBitrate: 0 },
    version: '0.1.0',
    startedAt: 1_000,
    ...overrides,
  };
}
