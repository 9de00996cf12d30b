import type { RoomSettings } from '@geosfu/common';
import type { RoomSettingsStore } from './RoomSettingsStore.js';

/** Room settings of a single node (no Redis): a map, and a timer per empty room. */
export class MemoryRoomSettings implements RoomSettingsStore {
  readonly #rooms = new Map<string, RoomSettings>();
  readonly #expiry = new Map<string, NodeJS.Timeout>();
  readonly #finished = new Set<string>();

  async create(settings: RoomSettings): Promise<RoomSettings> {
    const existing = this.#rooms.get(settings.name);
    if (existing) return structuredClone(existing);
    this.#rooms.set(settings.name, structuredClone(settings));
    await this.emptied(settings.name);
    return structuredClone(settings);
  }

  async get(room: string): Promise<RoomSettings | undefined> {
    const s = this.#rooms.get(room);
    return s && structuredClone(s);
  }

  async list(): Promise<RoomSettings[]> {
    return structuredClone([...this.#rooms.values()]);
  }

  async delete(room: string): Promise<boolean> {
    clearTimeout(this.#expiry.get(room));
    this.#expiry.delete(room);
    return this.#rooms.delete(room);
  }

  async occupied(room: string): Promise<void> {
    clearTimeout(this.#expiry.get(room));
    this.#expiry.delete(room);
  }

  async emptied(room: string): Promise<void> {
    const settings = this.#rooms.get(room);
    if (!settings) return;
    clearTimeout(this.#expiry.get(room));
    const timer = setTimeout(() => {
      this.#expiry.delete(room);
      this.#rooms.delete(room);
    }, settings.emptyTimeout * 1000);
    timer.unref();
    this.#expiry.set(room, timer);
  }

  async claimFinished(room: string, createdAt: number): Promise<boolean> {
    const key = `${room}\n${createdAt}`;
    if (this.#finished.has(key)) return false;
    this.#finished.add(key);
    return true;
  }

  close(): void {
    for (const timer of this.#expiry.values()) clearTimeout(timer);
    this.#expiry.clear();
  }
}
