/**
 * The data an experiment run produces: written as `result.json` (+ CSVs) under
 * `results/<timestamp>/` and read back by the report. Field names are relied on by scripts.
 * Times are epoch milliseconds unless a name says otherwise.
 */

/** The hosts of the lab; in a real deployment the same names label the machines. */
export type HostName = 'core' | 'ams' | 'sin' | 'hcm' | 'eu-client' | 'vn-client';
export type NodeRegion = 'ams' | 'sin' | 'hcm';
export type Peer = 'eu' | 'vn';
export type MediaKind = 'video' | 'audio';
export type ScenarioId = 1 | 2 | 3 | 4;

export interface ScenarioDefinition {
  id: ScenarioId;
  /** e.g. 'EU -> Singapore -> relay -> HCM -> VN'. */
  title: string;
  /** Node each peer joins; `route` = ask GeoIP routing (GET /v1/route) instead of pinning. */
  eu: NodeRegion | 'route';
  vn: NodeRegion | 'route';
  /** Nodes the route is expected to use (for 'route', what GeoIP should pick). */
  expected: { eu: NodeRegion; vn: NodeRegion };
  /** True when media crosses a relay link between two nodes. */
  relayed: boolean;
}

/** One receiving bot's view of one stream over one sampling interval. */
export interface StreamSample {
  /** End of the interval. */
  t: number;
  scenario: ScenarioId;
  /** The receiving peer; the stream was published by the other one. */
  peer: Peer;
  kind: MediaKind;
  intervalMs: number;
  /** Unique packets and their bytes (header + payload) received in the interval. */
  packets: number;
  bytes: number;
  /** Received bitrate over the interval, kbit/s. */
  bitrateKbps: number;
  /** Sequence gaps opened in the interval that were not filled (cumulative lost delta). */
  lost: number;
  expected: number;
  /** One-way latency (arrival - send timestamp in the packet) of the interval's packets. */
  latencyMs: { mean: number | null; p50: number | null; p95: number | null; max: number | null };
  latencySamples: number;
  /** RFC 3550 interarrival jitter at the end of the interval. */
  jitterMs: number;
  /** Clock correction applied to the latency (0 in the lab: one clock). */
  clockOffsetMs: number;
}

/** One node's counters at one scrape of its /metrics. */
export interface NodeSample {
  t: number;
  scenario: ScenarioId;
  node: NodeRegion;
  participants: number;
  /** sfu_relay_links summed over directions and peers. */
  relayLinks: number;
  /** Cumulative sfu_packets_total{path="relay"} by direction. */
  relayPacketsIn: number;
  relayPacketsOut: number;
  /** Cumulative sfu_packets_total{path="client"} by direction. */
  clientPacketsIn: number;
  clientPacketsOut: number;
  /** Mean Redis round trip seen by the node since the previous scrape (null without samples). */
  redisRttMs: number | null;
}

/** CPU accounting of this machine over one interval, from /proc/stat. */
export interface CpuSample {
  t: number;
  scenario: ScenarioId;
  /** Share of the interval the hypervisor stole from this VM, percent of all CPUs. */
  stealPercent: number;
  /** Busy (non-idle, non-steal) share, percent of all CPUs. */
  busyPercent: number;
}

/** Emulator counters for one directed link, cumulative over the scenario. */
export interface LinkSample {
  scenario: ScenarioId;
  from: HostName;
  to: HostName;
  forwarded: number;
  lost: number;
  queueDropped: number;
  /** Scheduling error (actual send time - due time) of the router, microseconds. */
  lateUsP50: number;
  lateUsP99: number;
}

export interface JoinRecord {
  peer: Peer;
  node: NodeRegion;
  ok: boolean;
  /** Websocket open to `joined`, ms. */
  joinMs: number | null;
  /** Join to the first packet of the other peer's video, ms. */
  firstMediaMs: number | null;
  error?: string;
}

export interface StreamSummary {
  /** Receiving peer and kind: 'eu' receives what 'vn' publishes. */
  peer: Peer;
  kind: MediaKind;
  /** Mean received bitrate over the measured window, kbit/s. */
  avgBitrateKbps: number;
  latencyMs: { mean: number | null; p50: number | null; p95: number | null; p99: number | null };
  /** Mean of the interval jitter values. */
  avgJitterMs: number;
  /** Lost / expected over the window, percent. */
  lossPercent: number;
  packets: number;
  /** Sum of the configured one-way link delays on this stream's path, ms. */
  configuredDelayMs: number | null;
}

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  /** The hosts media crosses, publisher side first, e.g. ['eu-client', 'sin', 'hcm', 'vn-client']. */
  path: HostName[];
  nodes: { eu: NodeRegion; vn: NodeRegion };
  relayed: boolean;
  startedAt: number;
  endedAt: number;
  /** Start of the measured window (after joins and a warm-up), ms epoch. */
  measuredFrom: number;
  streams: StreamSummary[];
  joins: JoinRecord[];
  /** Relay link set-ups the nodes measured during the scenario (histogram delta), ms each. */
  relaySetups: { count: number; meanMs: number | null; failures: number };
  /** Relay packets the scenario moved, from the nodes' counters (0 when not relayed). */
  relayPackets: number;
  /** Mean Redis round trip per node over the scenario. */
  redisRttMs: Partial<Record<NodeRegion, number | null>>;
  steal: {
    avgPercent: number;
    maxPercent: number;
    highIntervals: number;
    intervals: number;
    flagged: boolean;
  };
  errors: string[];
  /** How many times the scenario ran (a failed attempt is run again, up to --retries). */
  attempts?: number;
  /** Errors of the earlier, failed attempts ('attempt N: ...'); their samples were dropped. */
  retriedErrors?: string[];
}

export interface ExperimentResult {
  version: 1;
  startedAt: number;
  finishedAt: number;
  target: 'lab' | 'real';
  /** Link profile set (lab) or a free-text description of the deployment (real). */
  profile: string;
  durationPerScenarioMs: number;
  sampleIntervalMs: number;
  /** Steal above this share of an interval marks it (percent). */
  stealThresholdPercent: number;
  machine: { cpus: number; model: string; kernel: string; node: string; hostname: string };
  scenarios: ScenarioResult[];
  samples: { streams: StreamSample[]; nodes: NodeSample[]; cpu: CpuSample[]; links: LinkSample[] };
}
