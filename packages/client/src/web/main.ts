/**
 * The demo page served at `/` by a node in dev mode: join a room with camera and microphone,
 * see and hear everyone else, chat. URL parameters `?room=R&name=N&autojoin=1` skip the form;
 * `?region=X` or `?node=ID` pin where `/v1/route` sends the page (otherwise: the nearest node).
 */
import type { SubscriptionPin } from '@geosfu/common/protocol';
import type { ReceivedLayer } from './RemoteVideos.js';
import type { ViewSettings } from './SettingsReporter.js';
import type { LocalLayerState } from './SimulcastSender.js';
import { Session, type SessionState } from './session.js';
import { type ConnectionStats, NodeStatsView, type NodeView, StatsSampler } from './stats.js';
import { DemoUi } from './ui.js';

/** Read-only hook for end-to-end tests (`page.evaluate(() => window.__sfu...)`). */
export interface SfuTestHook {
  readonly state: SessionState;
  readonly sessionId: string | null;
  /** The node the page is connected (or connecting) to, and its region. */
  readonly nodeId: string | null;
  readonly region: string | null;
  /** Identities of the other participants shown, in the order they are shown. */
  participants(): string[];
  /** The server's mid -> track mapping of the current subscriber offer. */
  subscribedTracks(): {
    mid: string;
    trackId: string;
    participantSid: string;
    identity: string;
    kind: string;
  }[];
  readonly subscriberPc: RTCPeerConnection | null;
  readonly publisherPc: RTCPeerConnection | null;
  /** Each remote video shown: its pin, the layer the node says it sends, what it was told. */
  remoteVideos(): RemoteVideoView[];
  /** Our camera's simulcast layers and whether each is sent now (empty: one layer). */
  localLayers(): LocalLayerState[];
}

export interface RemoteVideoView {
  identity: string;
  participantSid: string;
  trackId: string;
  mid: string;
  /** The track was published with simulcast layers (the pin control shows). */
  simulcast: boolean;
  pin: SubscriptionPin;
  /** The last `subscription.layer` for it (rid null: paused); null before the first. */
  layer: ReceivedLayer | null;
  /** The last `subscription.settings` sent for it on this connection. */
  settings: ViewSettings | null;
}

declare global {
  interface Window {
    __sfu: SfuTestHook;
  }
}

const NAME_KEY = 'geosfu.name';
const STATS_INTERVAL_MS = 1000;
/** How often the page asks the node for its view of our streams (`stats` request). */
const NODE_STATS_INTERVAL_MS = 5000;

const session = new Session();
const ui = new DemoUi(session);
const params = new URLSearchParams(location.search);
const autojoin = params.get('autojoin') === '1';
const pinnedRegion = params.get('region')?.trim() || undefined;
const pinnedNode = params.get('node')?.trim() || undefined;
// A token minted by the application's backend (`sfu-node token ...`): the room is the token's.
const accessToken = params.get('token')?.trim() || undefined;

ui.roomInput.value = params.get('room') ?? 'demo';
ui.nameInput.value = params.get('name') ?? sessionStorage.getItem(NAME_KEY) ?? '';

// Coalesce bursts of changes (an offer touches many tracks) into one render.
let renderQueued = false;
function scheduleRender(): void {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    ui.render();
  });
}

session.on('change', scheduleRender);
session.on('chat', (line) => ui.appendChat(line));
session.on('notice', (notice) => ui.toast(notice));
session.on('state', (state) => {
  if (state === 'joined') startStats();
  else stopStats();
  if (state === 'left' || state === 'error') ui.nameInput.focus();
});

function join(): void {
  const room = ui.roomInput.value.trim();
  const name = ui.nameInput.value.trim();
  if (!room || !name) {
    ui.joinForm.reportValidity();
    return;
  }
  const identity = params.get('identity')?.trim() || name;
  sessionStorage.setItem(NAME_KEY, name);
  if (!autojoin) {
    // Make the address bar a link to this room that can be shared.
    const url = new URL(location.href);
    const search = new URLSearchParams({ room });
    if (pinnedRegion) search.set('region', pinnedRegion);
    if (pinnedNode) search.set('node', pinnedNode);
    url.search = search.toString();
    history.replaceState(null, '', url);
  }
  ui.clearChat();
  ui.clearStats();
  void session.join({
    room,
    name,
    identity,
    region: pinnedRegion,
    node: pinnedNode,
    token: accessToken,
  });
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  join();
});
ui.micButton.addEventListener('click', () => session.setMicMuted(!session.local.micMuted));
ui.camButton.addEventListener('click', () => session.setCamMuted(!session.local.camMuted));
ui.leaveButton.addEventListener('click', () => session.leave());
ui.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (session.sendChat(ui.chatInput.value)) ui.chatInput.value = '';
});
ui.shareButton.addEventListener('click', () => {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set('room', session.room ?? ui.roomInput.value.trim());
  const link = url.toString();
  navigator.clipboard?.writeText(link).then(
    () => ui.toast({ level: 'info', text: `Link copied: ${link}` }),
    () => ui.toast({ level: 'info', text: `Share this link: ${link}` }),
  ) ?? ui.toast({ level: 'info', text: `Share this link: ${link}` });
});
document.addEventListener('keydown', (event) => {
  if (session.state !== 'joined' || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
  if (event.key === 'm' || event.key === 'M') session.setMicMuted(!session.local.micMuted);
  if (event.key === 'v' || event.key === 'V') session.setCamMuted(!session.local.camMuted);
});

// Best effort: tell the server we are gone, so the others do not wait for a heartbeat timeout.
window.addEventListener('pagehide', () => session.leave());
window.addEventListener('beforeunload', () => session.leave());

// ---------------------------------------------------------------------------------------
// Stats line
// ---------------------------------------------------------------------------------------

let statsTimer: ReturnType<typeof setInterval> | undefined;
let nodeStatsTimer: ReturnType<typeof setInterval> | undefined;
let upSampler = new StatsSampler('outbound');
let downSampler = new StatsSampler('inbound');
/** The node's last answer, shown next to the browser's own numbers. */
let nodeStats: NodeView | null = null;
let nodeStatsView = new NodeStatsView();
let nodeStatsPending = false;

function startStats(): void {
  stopStats();
  upSampler = new StatsSampler('outbound');
  downSampler = new StatsSampler('inbound');
  statsTimer = setInterval(() => {
    void sampleStats();
  }, STATS_INTERVAL_MS);
  void sampleNodeStats();
  nodeStatsTimer = setInterval(() => {
    void sampleNodeStats();
  }, NODE_STATS_INTERVAL_MS);
}

function stopStats(): void {
  clearInterval(statsTimer);
  clearInterval(nodeStatsTimer);
  statsTimer = undefined;
  nodeStatsTimer = undefined;
  nodeStats = null;
  nodeStatsView = new NodeStatsView();
}

/** Asks the node how it sees our streams; a stream's bitrate needs two replies (an interval). */
async function sampleNodeStats(): Promise<void> {
  if (nodeStatsPending) return;
  nodeStatsPending = true;
  try {
    const streams = await session.nodeStats();
    if (streams === null || session.state !== 'joined') return;
    nodeStats = nodeStatsView.update(streams);
  } catch {
    // A slow or failed answer: keep showing the previous one; the next round asks again.
  } finally {
    nodeStatsPending = false;
  }
}

async function sampleStats(): Promise<void> {
  const pub = session.publisherPc;
  const sub = session.subscriberPc;
  const [up, down] = await Promise.all([
    pub ? upSampler.sample(pub).catch(() => null) : Promise.resolve<ConnectionStats | null>(null),
    sub ? downSampler.sample(sub).catch(() => null) : Promise.resolve<ConnectionStats | null>(null),
  ]);
  if (session.state !== 'joined') return;
  ui.renderStats(up, down, nodeStats);
  ui.renderTileStats(down);
  ui.setSpeaking(DemoUi.speakingFrom(session, up, down));
}

// ---------------------------------------------------------------------------------------
// Test hook and start
// ---------------------------------------------------------------------------------------

const hook: SfuTestHook = Object.freeze({
  get state() {
    return session.state;
  },
  get sessionId() {
    return session.sessionId;
  },
  get nodeId() {
    return session.nodeId;
  },
  get region() {
    return session.region;
  },
  participants: () => [...session.peers.values()].map((p) => p.identity),
  subscribedTracks: () => session.subscribedTracks.map((t) => ({ ...t })),
  get subscriberPc() {
    return session.subscriberPc;
  },
  get publisherPc() {
    return session.publisherPc;
  },
  remoteVideos: () =>
    [...session.peers.values()].flatMap((peer) => {
      const video = peer.video;
      if (!video) return [];
      return [
        {
          identity: peer.identity,
          participantSid: peer.sessionId,
          trackId: video.trackId,
          mid: video.mid,
          simulcast: (peer.tracks.get(video.trackId)?.layers?.length ?? 0) > 1,
          pin: session.videos.pin(video.trackId),
          layer: session.videos.layer(video.trackId),
          settings: session.videos.sentSettings(video.trackId),
        },
      ];
    }),
  localLayers: () => session.local.simulcast?.state() ?? [],
});
Object.defineProperty(window, '__sfu', { value: hook, writable: false, configurable: false });

ui.render();
if (autojoin && ui.roomInput.value.trim() && ui.nameInput.value.trim()) join();
else ui.nameInput.focus();
