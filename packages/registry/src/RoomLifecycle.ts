import type { Logger, RoomSettings } from '@geosfu/common';
import type { RoomSettingsStore } from './RoomSettingsStore.js';
import type { RoomStore, SessionRecord } from './RoomStore.js';
import type { WebhookInput } from './WebhookSender.js';

/**
 * What a node does when its own change to a room store opens or empties a room, or reaps a
 * dead node's sessions: each of these happens under the room's lock in exactly one process,
 * which makes it the one that tells the webhooks (`room_started`, `room_finished`,
 * `participant_left` with `node-died`) and keeps an API-created room's settings alive while
 * it is in use (`occupied`), or lets them expire after its empty timeout (`emptied`).
 */
export class RoomLifecycle {
  readonly #store: RoomStore;
  readonly #settings: RoomSettingsStore;
  readonly #notify: (event: WebhookInput) => void;
  readonly #logger: Logger;
  /** Rooms this node emptied, waiting to see if their settings expire. */
  readonly #expiring = new Map<string, NodeJS.Timeout>();
  readonly #off: (() => void)[] = [];

  constructor(options: {
    store: RoomStore;
    settings: RoomSettingsStore;
    notify: (event: WebhookInput) => void;
    logger: Logger;
  }) {
    this.#store = options.store;
    this.#settings = options.settings;
    this.#notify = options.notify;
    this.#logger = options.logger.child({ component: 'room-lifecycle' });
    this.#off.push(
      this.#store.on('opened', (room) => void this.#opened(room)),
      this.#store.on('emptied', (room) => void this.#emptied(room)),
      this.#store.on('reaped', (room, session) => this.#reaped(room, session)),
    );
  }

  async #opened(room: string): Promise<void> {
    clearTimeout(this.#expiring.get(room));
    this.#expiring.delete(room);
    try {
      // An API-created room started when it was created.
      if (await this.#settings.get(room)) await this.#settings.occupied(room);
      else this.#notify({ event: 'room_started', room });
    } catch (error) {
      this.#logger.warn({ err: error, room }, 'could not read the room settings');
    }
  }

  async #emptied(room: string): Promise<void> {
    try {
      const settings = await this.#settings.get(room);
      if (!settings) {
        this.#notify({ event: 'room_finished', room });
        return;
      }
      await this.#settings.emptied(room);
      this.watchExpiry(room, settings);
    } catch (error) {
      this.#logger.warn({ err: error, room }, 'could not update the room settings');
    }
  }

  /**
   * The room is empty with settings that expire after `emptyTimeoutS` (Redis forgets them):
   * this process tells the webhooks `room_finished` then, if nobody came meanwhile.
   */
  watchExpiry(room: string, settings: RoomSettings): void {
    clearTimeout(this.#expiring.get(room));
    const timer = setTimeout(
      () => void this.#checkExpired(room, settings.createdAt),
      settings.emptyTimeout * 1000 + 1_000,
    );
    this.#expiring.set(room, timer);
  }

  async #checkExpired(room: string, createdAt: number): Promise<void> {
    this.#expiring.delete(room);
    try {
      const [settings, participants] = await Promise.all([
        this.#settings.get(room),
        this.#store.participants(room),
      ]);
      // A delete of the empty room may have told it already: one of us wins the claim.
      if (
        !settings &&
        participants.length === 0 &&
        (await this.#settings.claimFinished(room, createdAt))
      )
        this.#notify({ event: 'room_finished', room });
    } catch (error) {
      this.#logger.warn({ err: error, room }, 'could not check an empty room');
    }
  }

  #reaped(room: string, session: SessionRecord): void {
    this.#notify({
      event: 'participant_left',
      room,
      reason: 'node-died',
      participant: {
        sessionId: session.sessionId,
        identity: session.identity,
        name: session.name,
        joinedAt: session.joinedAt,
        nodeId: session.nodeId,
        region: session.region,
        tracks: session.tracks,
      },
    });
  }

  close(): void {
    for (const off of this.#off.splice(0)) off();
    for (const timer of this.#expiring.values()) clearTimeout(timer);
    this.#expiring.clear();
  }
}
