/**
 * The page's side of layer selection for the videos it receives: how each is shown (reported
 * by its tile, sent to the node through a SettingsReporter), the user's pin (auto / low /
 * high) and the layer the node says it now sends (`subscription.layer`). One per page; it
 * follows the session from connection to connection (`attach`), and pins survive a move to
 * another node.
 */
import type { SubscriptionPin } from '@geosfu/common/protocol';
import type { ClientSession } from '../core/ClientSession.js';
import type { BrowserDriver } from './BrowserDriver.js';
import { SettingsReporter, type ViewSettings } from './SettingsReporter.js';

/** The layer of a remote simulcast video we receive; `rid` null while the node pauses it. */
export interface ReceivedLayer {
  rid: string | null;
  width: number;
  height: number;
}

/** How a tile shows its video, as the tile observes it. */
export type TileView = Omit<ViewSettings, 'pin'>;

export class RemoteVideos {
  readonly #onChange: () => void;
  readonly #reporter: SettingsReporter;
  readonly #pins = new Map<string, SubscriptionPin>();
  readonly #views = new Map<string, TileView>();
  readonly #layers = new Map<string, ReceivedLayer>();
  #core: ClientSession<BrowserDriver> | null = null;

  constructor(onChange: () => void) {
    this.#onChange = onChange;
    this.#reporter = new SettingsReporter((trackId, settings) =>
      this.#core?.updateSubscription(trackId, settings),
    );
  }

  /** A new connection: its node has been told nothing yet, and sends no layer yet. */
  attach(core: ClientSession<BrowserDriver>): void {
    this.#core = core;
    this.#reporter.reset();
    this.#layers.clear();
    core.on('subscribed', (tracks) => {
      if (this.#core !== core) return;
      // Settings go out for the videos this answer made subscriptions of, and only those.
      this.#reporter.subscribed(tracks.filter((t) => t.kind === 'video').map((t) => t.trackId));
    });
    core.on('subscriptionLayer', (trackId, layer) => {
      if (this.#core !== core) return;
      this.#layers.set(trackId, { rid: layer.rid, width: layer.width, height: layer.height });
      this.#onChange();
    });
  }

  /** The connection is gone (left, failed, or moving to another node). */
  detach(): void {
    this.#core = null;
    this.#reporter.reset();
    this.#layers.clear();
  }

  pin(trackId: string): SubscriptionPin {
    return this.#pins.get(trackId) ?? 'auto';
  }

  setPin(trackId: string, pin: SubscriptionPin): void {
    if (this.pin(trackId) === pin) return;
    if (pin === 'auto') this.#pins.delete(trackId);
    else this.#pins.set(trackId, pin);
    this.#report(trackId);
    this.#onChange();
  }

  /** What the node last said it sends of `trackId`; null before it said anything. */
  layer(trackId: string): ReceivedLayer | null {
    return this.#layers.get(trackId) ?? null;
  }

  /** The settings last sent for `trackId` on this connection, if any. */
  sentSettings(trackId: string): ViewSettings | null {
    return this.#reporter.sent(trackId) ?? null;
  }

  /** A tile's observation of how it shows `trackId`'s video. */
  observe(trackId: string, view: TileView): void {
    this.#views.set(trackId, view);
    this.#report(trackId);
  }

  /** The tile of `trackId` is gone. */
  forget(trackId: string): void {
    this.#views.delete(trackId);
    this.#reporter.forget(trackId);
  }

  close(): void {
    this.detach();
    this.#reporter.close();
  }

  #report(trackId: string): void {
    const view = this.#views.get(trackId);
    if (view) this.#reporter.update(trackId, { ...view, pin: this.pin(trackId) });
  }
}
