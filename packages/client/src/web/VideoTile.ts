/**
 * One tile of the call: a participant's video (or avatar), name and microphone state; for a
 * remote video also the layer it is received at, its decoded size and rate, a pin control
 * (auto / low / high) when it is simulcast, and the observers that report how it is shown:
 * its rendered size in device pixels (ResizeObserver), whether it is on screen
 * (IntersectionObserver) and whether the page is (document.visibilityState).
 */
import type { SubscriptionPin } from '@geosfu/common/protocol';
import { h, hueOf, initials } from './dom.js';
import { ICONS } from './icons.js';
import type { ReceivedLayer, TileView } from './RemoteVideos.js';
import type { LocalLayerState } from './SimulcastSender.js';
import type { VideoStats } from './stats.js';

/** What one tile shows; the local tile and remote tiles use the same shape. */
export interface TileModel {
  key: string;
  name: string;
  self: boolean;
  video: MediaStreamTrack | null;
  audio: MediaStreamTrack | null;
  camOff: boolean;
  micOff: boolean;
  /** The remote video's server track id and m-line (null for the local tile or no video). */
  trackId: string | null;
  mid: string | null;
  /** A remote simulcast video (its TrackInfo has layers): the pin control shows. */
  simulcast: boolean;
  pin: SubscriptionPin;
  /** The layer the node says it sends us. */
  layer: ReceivedLayer | null;
  /** The local tile: our camera's layers (empty when not simulcast). */
  sending: LocalLayerState[];
}

export interface TileHooks {
  pin(trackId: string, pin: SubscriptionPin): void;
  observe(trackId: string, view: TileView): void;
  forget(trackId: string): void;
}

const PINS: readonly { pin: SubscriptionPin; label: string; title: string }[] = [
  { pin: 'auto', label: 'Auto', title: 'Quality by tile size and network' },
  { pin: 'low', label: 'Low', title: 'Always the lowest layer (saves bandwidth)' },
  { pin: 'high', label: 'High', title: 'The highest layer the network carries' },
];

function setSource(media: HTMLMediaElement, track: MediaStreamTrack | null): boolean {
  const current =
    media.srcObject instanceof MediaStream ? (media.srcObject.getTracks()[0] ?? null) : null;
  if (current === track) return false;
  media.srcObject = track ? new MediaStream([track]) : null;
  return track !== null;
}

export class VideoTile {
  readonly key: string;
  readonly root: HTMLDivElement;
  readonly video: HTMLVideoElement;
  readonly audio: HTMLAudioElement | null;
  readonly #avatar: HTMLDivElement;
  readonly #name: HTMLSpanElement;
  readonly #mic: HTMLSpanElement;
  /** Received layer, decoded size and rate ("h 640×360 · 24 fps"). */
  readonly #info: HTMLDivElement;
  readonly #pins: HTMLDivElement;
  readonly #hooks: TileHooks;
  readonly #resize: ResizeObserver;
  readonly #intersection: IntersectionObserver;
  readonly #onVisibility = () => this.#report();
  #trackId: string | null = null;
  #model: TileModel;
  #stats: VideoStats | null = null;
  /** The video element's size in CSS pixels, and whether it is in the viewport. */
  #size = { width: 0, height: 0 };
  #onScreen = false;

  constructor(model: TileModel, hooks: TileHooks) {
    this.key = model.key;
    this.#model = model;
    this.#hooks = hooks;
    this.video = h('video', { attrs: { autoplay: '', playsinline: '' } });
    this.video.muted = true; // sound plays through the <audio> element, so autoplay is never blocked
    if (model.self) this.video.classList.add('mirror');
    this.audio = model.self ? null : h('audio', { attrs: { autoplay: '' } });
    this.#avatar = h('div', { class: 'avatar' }, initials(model.name));
    this.#avatar.style.setProperty('--hue', String(hueOf(model.name)));
    this.#mic = h('span', { class: 'mic' });
    this.#name = h('span', { class: 'name' });
    this.#info = h('div', { class: 'layer-info' });
    this.#pins = h('div', {
      class: 'pin',
      attrs: { role: 'group', 'aria-label': 'Video quality' },
    });
    for (const { pin, label, title } of PINS) {
      const button = h('button', { attrs: { type: 'button', 'data-pin': pin, title } }, label);
      button.addEventListener('click', () => {
        if (this.#trackId) this.#hooks.pin(this.#trackId, pin);
      });
      this.#pins.append(button);
    }
    const label = h('div', { class: 'label' }, this.#mic, this.#name);
    this.root = h(
      'div',
      { class: 'tile', attrs: { 'data-key': model.key } },
      this.video,
      this.#avatar,
      this.#info,
      this.#pins,
      label,
    );
    if (this.audio) this.root.append(this.audio);
    if (model.self) this.root.classList.add('self');

    this.#resize = new ResizeObserver((entries) => {
      const box = entries.at(-1)?.contentRect;
      if (!box) return;
      this.#size = { width: box.width, height: box.height };
      this.#report();
    });
    this.#intersection = new IntersectionObserver((entries) => {
      const entry = entries.at(-1);
      if (!entry) return;
      this.#onScreen = entry.isIntersecting;
      this.#report();
    });
    if (!model.self) {
      this.#resize.observe(this.video);
      this.#intersection.observe(this.video);
      document.addEventListener('visibilitychange', this.#onVisibility);
    }
  }

  /** Brings the tile up to date; returns the media elements whose source changed. */
  update(model: TileModel): { video: boolean; audio: boolean } {
    this.#model = model;
    this.#name.textContent = model.self ? `${model.name} (you)` : model.name;
    this.#avatar.textContent = initials(model.name);
    this.#mic.innerHTML = model.micOff ? ICONS.micOff : '';
    this.#mic.hidden = !model.micOff;
    this.#mic.title = model.micOff ? 'Microphone off' : '';
    this.root.classList.toggle('cam-off', model.camOff);
    this.root.classList.toggle('mic-off', model.micOff);
    if (model.trackId !== this.#trackId) {
      // Another track on this tile (republished): the old one's settings mean nothing now.
      if (this.#trackId) this.#hooks.forget(this.#trackId);
      this.#trackId = model.trackId;
    }
    this.#pins.hidden = !model.simulcast || model.trackId === null;
    for (const button of this.#pins.querySelectorAll('button')) {
      button.setAttribute('aria-pressed', String(button.dataset.pin === model.pin));
    }
    this.root.dataset.pin = model.pin;
    this.root.dataset.rid = model.layer?.rid ?? '';
    this.#renderInfo();
    this.#report();
    return {
      video: setSource(this.video, model.video),
      audio: this.audio !== null && setSource(this.audio, model.audio),
    };
  }

  /** The decoded size and rate of this tile's video, from the last stats sample. */
  setStats(stats: VideoStats | null): void {
    this.#stats = stats;
    this.#renderInfo();
  }

  close(): void {
    this.#resize.disconnect();
    this.#intersection.disconnect();
    document.removeEventListener('visibilitychange', this.#onVisibility);
    if (this.#trackId) this.#hooks.forget(this.#trackId);
    this.video.srcObject = null;
    if (this.audio) this.audio.srcObject = null;
    this.root.remove();
  }

  #renderInfo(): void {
    const model = this.#model;
    const parts: string[] = [];
    if (model.self) {
      // Our camera's layers: the ones the encoder sends, and the paused ones struck through.
      const sending = model.sending.filter((l) => l.active).map((l) => l.rid);
      if (model.sending.length > 0) parts.push(`↑ ${sending.join(' ')}`);
    } else if (model.layer) {
      parts.push(
        model.layer.rid === null
          ? 'paused'
          : `${model.layer.rid} ${model.layer.width}×${model.layer.height}`,
      );
    }
    const s = this.#stats;
    if (s && s.frameWidth > 0 && !model.camOff) {
      const fps = s.framesPerSecond === null ? '' : ` · ${Math.round(s.framesPerSecond)} fps`;
      parts.push(`${s.frameWidth}×${s.frameHeight}${fps}`);
    }
    const text = parts.join(' · ');
    if (this.#info.textContent !== text) this.#info.textContent = text;
    this.#info.hidden = text === '';
    this.#info.title = model.self
      ? 'Simulcast layers your camera sends now (the others are paused: nobody needs them)'
      : 'Layer the node sends (rid and size), and the size and rate decoded here';
  }

  /** Tells the session how the remote video is shown now (it sends it when that changed). */
  #report(): void {
    if (this.#model.self || this.#trackId === null) return;
    const dpr = window.devicePixelRatio || 1;
    this.#hooks.observe(this.#trackId, {
      visible: this.#onScreen && document.visibilityState === 'visible',
      width: this.#size.width * dpr,
      height: this.#size.height * dpr,
    });
  }
}
