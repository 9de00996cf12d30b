import type { RoomSettings } from '@geosfu/common';

/**
 * The settings of rooms created through the room service API (limits, empty timeout,
 * metadata). A room is kept while it has participants; once empty it is forgotten after its
 * `emptyTimeout`, unless someone joins first. Rooms created by a join have no settings.
 */
export interface RoomSettingsStore {
  /** Stores new settings, or returns the room's existing ones (they are not changed). */
  create(settings: RoomSettings): Promise<RoomSettings>;
  get(room: string): Promise<RoomSettings | undefined>;
  list(): Promise<RoomSettings[]>;
  /** Forgets the room; false if it had no settings. */
  delete(room: string): Promise<boolean>;
  /** Someone is in the room: keep it. */
  occupied(room: string): Promise<void>;
  /** The room is empty: forget it after its empty timeout. */
  emptied(room: string): Promise<void>;
  /**
   * True once per room incarnation (`createdAt` of its settings), cluster-wide: whoever ends
   * an API-created room (a delete, or a watcher of its empty timeout) sends `room_finished`
   * only if it wins this.
   */
  claimFinished(room: string, createdAt: number): Promise<boolean>;
  close(): void;
}
