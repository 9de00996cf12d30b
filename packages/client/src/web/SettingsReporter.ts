/**
 * Tells the node how each remote video is shown (`subscription.settings`): collects what the
 * tiles observe, and sends a track's settings only when they changed since the last send,
 * debounced so that a window being dragged to a new size sends one message, not sixty. Pure
 * (no DOM), so that it is tested without a browser.
 *
 * A track's settings go out only once its subscription exists (`subscribed`, after the
 * subscriber answer: the node ignores settings for a track it does not send us), and all of
 * them again after `reset` (a new connection: the new node knows nothing of them).
 */
import type { SubscriptionPin } from '@geosfu/common/protocol';

export interface ViewSettings {
  visible: boolean;
  /** Rendered size in device pixels (0 when not laid out). */
  width: number;
  height: number;
  pin: SubscriptionPin;
}

/** The protocol's bounds (`SubscriptionSettings`): a size beyond them is clamped. */
const MAX_SIZE = 16_384;

/** Quiet time after the last change before the changes go out. */
export const SETTINGS_DEBOUNCE_MS = 250;
/** Changes that keep coming (a resize being dragged) still go out this often. */
export const SETTINGS_MAX_DELAY_MS = 1_000;

const clampSize = (n: number): number =>
  Number.isFinite(n) ? Math.min(MAX_SIZE, Math.max(0, Math.round(n))) : 0;

/** What is sent for `settings`: whole device pixels within the protocol's bounds. */
export function normalizeSettings(settings: ViewSettings): ViewSettings {
  const width = clampSize(settings.width);
  const height = clampSize(settings.height);
  // Nothing laid out is nothing seen: the node pauses a video it is told is 0 x 0 anyway.
  const visible = settings.visible && width > 0 && height > 0;
  return { visible, width, height, pin: settings.pin };
}

function same(a: ViewSettings | undefined, b: ViewSettings): boolean {
  return (
    a !== undefined &&
    a.visible === b.visible &&
    a.width === b.width &&
    a.height === b.height &&
    a.pin === b.pin
  );
}

export class SettingsReporter {
  readonly #send: (trackId: string, settings: ViewSettings) => void;
  /** The latest settings of every watched track. */
  readonly #current = new Map<string, ViewSettings>();
  /** What the node was last told, per track (of this connection). */
  readonly #sent = new Map<string, ViewSettings>();
  /** Tracks the current connection's subscriber sends us. */
  #subscribed = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the oldest unsent change was made (for the maximum delay). */
  #pendingSince: number | null = null;
  #closed = false;

  constructor(send: (trackId: string, settings: ViewSettings) => void) {
    this.#send = send;
  }

  /** The last settings sent for `trackId` on this connection, if any. */
  sent(trackId: string): ViewSettings | undefined {
    return this.#sent.get(trackId);
  }

  /** How `trackId` is shown now; goes out after the debounce if it differs from the last send. */
  update(trackId: string, settings: ViewSettings): void {
    if (this.#closed) return;
    const next = normalizeSettings(settings);
    if (same(this.#current.get(trackId), next)) return;
    this.#current.set(trackId, next);
    this.#schedule();
  }

  /** The tracks the subscriber now receives (after each subscriber answer). */
  subscribed(trackIds: Iterable<string>): void {
    if (this.#closed) return;
    this.#subscribed = new Set(trackIds);
    for (const trackId of this.#sent.keys()) {
      if (!this.#subscribed.has(trackId)) this.#sent.delete(trackId);
    }
    this.#schedule();
  }

  /** A track's tile is gone: forget it (a new tile for it starts afresh). */
  forget(trackId: string): void {
    this.#current.delete(trackId);
    this.#sent.delete(trackId);
  }

  /** A new connection: nothing is subscribed yet and the new node has been told nothing. */
  reset(): void {
    this.#sent.clear();
    this.#subscribed.clear();
    this.#cancel();
  }

  close(): void {
    this.#closed = true;
    this.#cancel();
    this.#current.clear();
    this.#sent.clear();
    this.#subscribed.clear();
  }

  #dirty(): boolean {
    for (const [trackId, settings] of this.#current) {
      if (this.#subscribed.has(trackId) && !same(this.#sent.get(trackId), settings)) return true;
    }
    return false;
  }

  #schedule(): void {
    if (!this.#dirty()) {
      this.#cancel();
      return;
    }
    const now = Date.now();
    this.#pendingSince ??= now;
    const delay = Math.min(
      SETTINGS_DEBOUNCE_MS,
      Math.max(0, this.#pendingSince + SETTINGS_MAX_DELAY_MS - now),
    );
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#flush(), delay);
  }

  #cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pendingSince = null;
  }

  #flush(): void {
    this.#timer = undefined;
    this.#pendingSince = null;
    for (const [trackId, settings] of this.#current) {
      if (!this.#subscribed.has(trackId) || same(this.#sent.get(trackId), settings)) continue;
      this.#sent.set(trackId, settings);
      this.#send(trackId, settings);
    }
  }
}
