/** The DOM side of the demo: video tiles, the people list, chat, controls and the stats line. */
import { byId, h, hueOf, initials } from './dom.js';
import { ICONS } from './icons.js';
import type { RemoteVideos } from './RemoteVideos.js';
import type { ChatLine, Notice, RemotePeer, Session } from './session.js';
import { type ConnectionStats, formatBitrate, formatRtt, type NodeView } from './stats.js';
import { type TileModel, VideoTile } from './VideoTile.js';

const SPEAKING_LEVEL = 0.04;
/** The gap between tiles, as in style.css. */
const TILE_GAP = 12;

function remoteModel(peer: RemotePeer, videos: RemoteVideos): TileModel {
  const published = [...peer.tracks.values()];
  const videoInfo = peer.video ? peer.tracks.get(peer.video.trackId) : undefined;
  const audioInfo = published.find((t) => t.kind === 'audio');
  const videoMuted = videoInfo?.muted ?? published.find((t) => t.kind === 'video')?.muted ?? false;
  const trackId = peer.video?.trackId ?? null;
  return {
    key: peer.sessionId,
    name: peer.name || peer.identity,
    self: false,
    video: peer.video?.track ?? null,
    audio: peer.audio?.track ?? null,
    camOff: !peer.video || videoMuted || peer.video.track.muted,
    micOff: !audioInfo || audioInfo.muted,
    trackId,
    mid: peer.video?.mid ?? null,
    simulcast: (videoInfo?.layers?.length ?? 0) > 1,
    pin: trackId ? videos.pin(trackId) : 'auto',
    layer: trackId ? videos.layer(trackId) : null,
    sending: [],
  };
}

export class DemoUi {
  readonly joinView = byId('join-view', HTMLElement);
  readonly callView = byId('call-view', HTMLElement);
  readonly joinForm = byId('join-form', HTMLFormElement);
  readonly roomInput = byId('room', HTMLInputElement);
  readonly nameInput = byId('name', HTMLInputElement);
  readonly joinButton = byId('join', HTMLButtonElement);
  readonly joinError = byId('join-error', HTMLParagraphElement);
  readonly grid = byId('grid', HTMLDivElement);
  readonly people = byId('people', HTMLUListElement);
  readonly peopleCount = byId('people-count', HTMLSpanElement);
  readonly messages = byId('messages', HTMLOListElement);
  readonly chatForm = byId('chat-form', HTMLFormElement);
  readonly chatInput = byId('chat-input', HTMLInputElement);
  readonly micButton = byId('mic', HTMLButtonElement);
  readonly camButton = byId('cam', HTMLButtonElement);
  readonly leaveButton = byId('leave', HTMLButtonElement);
  readonly shareButton = byId('share', HTMLButtonElement);
  readonly roomLabel = byId('room-label', HTMLSpanElement);
  readonly nodeLabel = byId('node-label', HTMLSpanElement);
  readonly status = byId('status', HTMLSpanElement);
  readonly statsLine = byId('stats', HTMLDivElement);
  readonly toasts = byId('toasts', HTMLDivElement);
  readonly soundButton = byId('enable-sound', HTMLButtonElement);

  #tiles = new Map<string, VideoTile>();
  #speaking = new Set<string>();

  constructor(private readonly session: Session) {
    this.leaveButton.innerHTML = `${ICONS.leave}<span>Leave</span>`;
    this.shareButton.innerHTML = `${ICONS.link}<span>Copy link</span>`;
    this.soundButton.innerHTML = `${ICONS.speaker}<span>Click to turn on sound</span>`;
    byId('chat-send', HTMLButtonElement).innerHTML = ICONS.send;
    this.soundButton.addEventListener('click', () => this.#unlockAudio());
    new ResizeObserver(() => this.layout()).observe(this.grid);
  }

  /** Shows the form or the call, and brings every part of the call up to date. */
  render(): void {
    const s = this.session;
    const inCall = s.state === 'joined' || s.state === 'joining';
    this.joinView.hidden = inCall;
    this.callView.hidden = !inCall;
    document.body.dataset.state = s.state;
    this.joinButton.disabled = s.state === 'joining';
    this.joinButton.textContent = s.state === 'joining' ? 'Joining…' : 'Join';
    this.roomLabel.textContent = s.room && inCall ? s.room : '';
    this.shareButton.hidden = !inCall;
    this.#renderNode();
    this.status.textContent = this.#statusText();
    this.status.dataset.state = s.state;
    const showDetail = s.state === 'error' || s.state === 'left';
    this.joinError.textContent = showDetail ? (s.detail ?? '') : '';
    this.joinError.dataset.level = s.state === 'error' ? 'error' : 'info';
    document.title = inCall && s.room ? `${s.room} · geosfu` : 'geosfu demo';

    this.#renderTiles();
    this.#renderPeople();
    this.#renderControls();
  }

  /** "ams · node-1": where `/v1/route` sent us, with why in the tooltip. */
  #renderNode(): void {
    const s = this.session;
    const inCall = s.state === 'joined' || s.state === 'joining';
    const show = inCall && s.nodeId !== null && s.region !== null;
    this.nodeLabel.textContent = show ? `${s.region} · ${s.nodeId}` : '';
    this.nodeLabel.hidden = !show;
    const r = s.route;
    const why = r
      ? ` (${r.reason}${r.distanceKm === null ? '' : `, ${r.distanceKm.toLocaleString()} km away`})`
      : '';
    this.nodeLabel.title = show ? `Connected to node ${s.nodeId} in ${s.region}${why}` : '';
  }

  #statusText(): string {
    const s = this.session;
    switch (s.state) {
      case 'idle':
        return '';
      case 'joining':
        return s.movingTo ? `Moving to ${s.movingTo}…` : 'Connecting…';
      case 'joined': {
        const states = [s.publisherPc, s.subscriberPc].map((pc) => pc?.connectionState);
        if (states.includes('failed')) return 'Media failed';
        if (states.includes('disconnected')) return 'Reconnecting…';
        if (states.includes('connecting')) return 'Connecting media…';
        return 'Live';
      }
      case 'left':
        return 'Left';
      case 'error':
        return 'Disconnected';
    }
  }

  #models(): TileModel[] {
    const s = this.session;
    if (s.state !== 'joined' && s.state !== 'joining') return [];
    const self: TileModel = {
      key: 'local',
      name: s.name ?? 'You',
      self: true,
      video: s.local.video,
      audio: null,
      camOff: !s.local.video || s.local.camMuted,
      micOff: !s.local.audio || s.local.micMuted,
      trackId: null,
      mid: null,
      simulcast: false,
      pin: 'auto',
      layer: null,
      sending: s.local.simulcast?.state() ?? [],
    };
    const others = [...s.peers.values()].map((peer) => remoteModel(peer, s.videos));
    return [self, ...others];
  }

  #renderTiles(): void {
    const models = this.#models();
    const keep = new Set(models.map((m) => m.key));
    for (const [key, tile] of this.#tiles) {
      if (keep.has(key)) continue;
      tile.close();
      this.#tiles.delete(key);
    }
    for (const model of models) {
      let tile = this.#tiles.get(model.key);
      if (!tile) {
        const videos = this.session.videos;
        tile = new VideoTile(model, {
          pin: (trackId, pin) => videos.setPin(trackId, pin),
          observe: (trackId, view) => videos.observe(trackId, view),
          forget: (trackId) => videos.forget(trackId),
        });
        this.#tiles.set(model.key, tile);
        this.grid.append(tile.root);
      }
      this.#updateTile(tile, model);
    }
    this.layout();
  }

  /** Sizes the tiles: the column count that makes 16:9 tiles largest in the stage wins. */
  layout(): void {
    const n = Math.max(1, this.#tiles.size);
    const width = this.grid.clientWidth;
    const height = this.grid.clientHeight;
    if (width === 0 || height === 0) return;
    const options = Array.from({ length: n }, (_, i) => {
      const cols = i + 1;
      const rows = Math.ceil(n / cols);
      const byWidth = (width - TILE_GAP * (cols - 1)) / cols;
      const byHeight = ((height - TILE_GAP * (rows - 1)) / rows) * (16 / 9);
      return { cols, tileWidth: Math.floor(Math.min(byWidth, byHeight)) };
    });
    const largest = Math.max(...options.map((o) => o.tileWidth));
    // Side by side reads better than stacked: take the most columns within 10% of the largest.
    const best = options.filter((o) => o.tileWidth >= largest * 0.9).at(-1) ?? {
      cols: 1,
      tileWidth: largest,
    };
    this.grid.style.setProperty('--cols', String(best.cols));
    this.grid.style.setProperty('--tile-w', `${Math.max(80, best.tileWidth)}px`);
  }

  #updateTile(tile: VideoTile, model: TileModel): void {
    tile.root.classList.toggle('speaking', !model.micOff && this.#speaking.has(model.key));
    const changed = tile.update(model);
    if (changed.video) tile.video.play().catch(() => undefined);
    if (changed.audio) {
      tile.audio?.play().catch((error: unknown) => {
        if (error instanceof DOMException && error.name === 'NotAllowedError') {
          this.soundButton.hidden = false;
        }
      });
    }
  }

  /** Each remote tile's decoded size and rate, from the subscriber's stats. */
  renderTileStats(down: ConnectionStats | null): void {
    const mids = new Map(this.#models().map((m) => [m.key, m.mid]));
    for (const tile of this.#tiles.values()) {
      const mid = mids.get(tile.key) ?? null;
      tile.setStats(mid === null ? null : (down?.videoByMid.get(mid) ?? null));
    }
  }

  #unlockAudio(): void {
    this.soundButton.hidden = true;
    for (const tile of this.#tiles.values()) {
      tile.audio?.play().catch(() => {
        this.soundButton.hidden = false;
      });
    }
  }

  #renderPeople(): void {
    const models = this.#models();
    this.peopleCount.textContent = models.length ? String(models.length) : '';
    const items = models.map((m) => {
      const avatar = h('span', { class: 'dot' }, initials(m.name));
      avatar.style.setProperty('--hue', String(hueOf(m.name)));
      const icons = h('span', { class: 'icons' });
      icons.innerHTML = `${m.micOff ? ICONS.micOff : ICONS.mic}${m.camOff ? ICONS.camOff : ICONS.cam}`;
      icons.classList.toggle('mic-off', m.micOff);
      const li = h(
        'li',
        { attrs: { 'data-key': m.key } },
        avatar,
        h('span', { class: 'who' }, m.name, m.self ? h('em', {}, ' (you)') : null),
        icons,
      );
      li.classList.toggle('speaking', !m.micOff && this.#speaking.has(m.key));
      return li;
    });
    this.people.replaceChildren(...items);
  }

  #renderControls(): void {
    const { local } = this.session;
    const micOff = local.micMuted || !local.audio;
    const camOff = local.camMuted || !local.video;
    this.micButton.innerHTML = `${micOff ? ICONS.micOff : ICONS.mic}<span>${local.micMuted ? 'Unmute' : 'Mute'}</span>`;
    this.micButton.classList.toggle('off', micOff);
    this.micButton.disabled = !local.audio;
    this.micButton.setAttribute('aria-pressed', String(local.micMuted));
    this.micButton.title = local.audio ? 'Mute or unmute your microphone (M)' : 'No microphone';
    this.camButton.innerHTML = `${camOff ? ICONS.camOff : ICONS.cam}<span>${local.camMuted ? 'Start video' : 'Stop video'}</span>`;
    this.camButton.classList.toggle('off', camOff);
    this.camButton.disabled = !local.video;
    this.camButton.setAttribute('aria-pressed', String(local.camMuted));
    this.camButton.title = local.video ? 'Turn your camera on or off (V)' : 'No camera';
  }

  /** Marks who is speaking, from the audio levels in the stats. */
  setSpeaking(keys: Set<string>): void {
    const same = keys.size === this.#speaking.size && [...keys].every((k) => this.#speaking.has(k));
    if (same) return;
    this.#speaking = keys;
    for (const [key, tile] of this.#tiles) {
      tile.root.classList.toggle(
        'speaking',
        keys.has(key) && !tile.root.classList.contains('mic-off'),
      );
    }
    for (const li of this.people.children) {
      if (li instanceof HTMLElement) {
        li.classList.toggle('speaking', keys.has(li.dataset.key ?? ''));
      }
    }
  }

  static speakingFrom(
    session: Session,
    up: ConnectionStats | null,
    down: ConnectionStats | null,
  ): Set<string> {
    const keys = new Set<string>();
    if ((up?.localAudioLevel ?? 0) > SPEAKING_LEVEL && !session.local.micMuted) keys.add('local');
    for (const [mid, level] of down?.audioLevelByMid ?? []) {
      const sid = session.participantOfMid(mid);
      if (sid && level > SPEAKING_LEVEL) keys.add(sid);
    }
    return keys;
  }

  renderStats(
    up: ConnectionStats | null,
    down: ConnectionStats | null,
    node: NodeView | null = null,
  ): void {
    const part = (label: string, arrow: string, stats: ConnectionStats | null) => {
      if (!stats) return h('span', { class: 'conn idle' }, `${arrow} ${label}: –`);
      return h(
        'span',
        { class: 'conn' },
        h('b', {}, `${arrow} ${formatBitrate(stats.kbps)}`),
        ` · RTT ${formatRtt(stats.rttMs)} · lost ${stats.packetsLost}`,
      );
    };
    const sending = part('sending', '↑', up);
    sending.title = 'Publisher connection: what you send';
    const receiving = part('receiving', '↓', down);
    receiving.title = 'Subscriber connection: what you receive';
    if (!node) {
      this.statsLine.replaceChildren(sending, receiving);
      return;
    }
    // The node's side of the same streams (the signalling `stats` request).
    const seen = h(
      'span',
      { class: 'conn node-view' },
      h('b', {}, 'node'),
      ` ⇡${formatBitrate(node.upKbps)} ⇣${formatBitrate(node.downKbps)}`,
      ` · RTT ${formatRtt(node.rttMs)} · jitter ${formatRtt(node.jitterMs)} · lost ${node.packetsLost}`,
    );
    seen.title = [
      "The node's view: ⇡ what it receives from you, ⇣ what it sends you",
      ...node.detail,
    ].join('\n');
    this.statsLine.replaceChildren(sending, receiving, seen);
  }

  clearStats(): void {
    this.statsLine.replaceChildren();
  }

  appendChat(line: ChatLine): void {
    const time = new Date(line.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    let li: HTMLLIElement;
    if (line.kind === 'system') {
      li = h('li', { class: 'system' }, line.text);
    } else {
      const who = h('span', { class: 'from' }, line.self ? 'You' : line.name);
      who.style.setProperty('--hue', String(hueOf(line.name)));
      li = h(
        'li',
        { class: line.self ? 'self' : '' },
        h('div', { class: 'meta' }, who, h('time', {}, time)),
        h('div', { class: 'text' }, line.text),
      );
    }
    const atBottom =
      this.messages.scrollHeight - this.messages.scrollTop - this.messages.clientHeight < 40;
    this.messages.append(li);
    if (atBottom || (line.kind === 'chat' && line.self)) {
      this.messages.scrollTop = this.messages.scrollHeight;
    }
  }

  clearChat(): void {
    this.messages.replaceChildren();
  }

  toast(notice: Notice): void {
    const el = h('div', { class: `toast ${notice.level}`, attrs: { role: 'status' } }, notice.text);
    this.toasts.append(el);
    const ttl = notice.level === 'error' ? 8000 : 5000;
    setTimeout(() => {
      el.classList.add('gone');
      setTimeout(() => el.remove(), 400);
    }, ttl);
  }
}
