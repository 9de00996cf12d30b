import {
  type ClusterRejectKind,
  type ClusterRejectReason,
  ClusterStateCodec,
  type RedisConnection,
  RoomSettings,
} from '@geosfu/common';
import { DEFAULT_KEY_PREFIX, registryKeys } from './keys.js';
import type { RoomSettingsStore } from './RoomSettingsStore.js';

/**
 * Room settings in Redis: one signed string key per room, `{prefix}roomsettings:{room}`
 * (kind `room-settings` of the cluster-state codec: a forged or moved value is ignored and
 * counted). An empty room's key carries a TTL of its empty timeout, so Redis forgets it
 * even if every node that saw it empty died; a join removes the TTL.
 */
export class RedisRoomSettings implements RoomSettingsStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #codec: ClusterStateCodec;
  readonly #rejected: (kind: ClusterRejectKind, reason: ClusterRejectReason) => void;

  constructor(options: {
    redis: RedisConnection;
    secret: string;
    keyPrefix?: string;
    /** Settings that did not verify, for `sfu_cluster_messages_rejected_total`. */
    onRejected?: (kind: ClusterRejectKind, reason: ClusterRejectReason) => void;
  }) {
    this.#redis = options.redis;
    this.#prefix = `${registryKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX).prefix}roomsettings:`;
    this.#codec = new ClusterStateCodec(options.secret);
    this.#rejected = options.onRejected ?? (() => undefined);
  }

  #key(room: string): string {
    return `${this.#prefix}${room}`;
  }

  #open(key: string, raw: string | null): RoomSettings | undefined {
    if (raw === null) return undefined;
    const opened = this.#codec.open(raw, {
      kind: 'room-settings',
      context: key,
      schema: RoomSettings,
      freshness: 'record',
    });
    if (opened.ok) return opened.value;
    this.#rejected('room-settings', opened.reason);
    return undefined;
  }

  async create(settings: RoomSettings): Promise<RoomSettings> {
    const key = this.#key(settings.name);
    const sealed = this.#codec.seal('room-settings', key, settings);
    const set = await this.#redis.command.set(
      key,
      sealed,
      'PX',
      settings.emptyTimeout * 1000,
      'NX',
    );
    if (set === 'OK') return settings;
    return (await this.get(settings.name)) ?? settings;
  }

  async get(room: string): Promise<RoomSettings | undefined> {
    const key = this.#key(room);
    return this.#open(key, await this.#redis.command.get(key));
  }

  async list(): Promise<RoomSettings[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.#redis.command.scan(
        cursor,
        'MATCH',
        `${this.#prefix}*`,
        'COUNT',
        500,
      );
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    if (keys.length === 0) return [];
    const values = await this.#redis.command.mget(...keys);
    return keys.flatMap((key, i) => {
      const settings = this.#open(key, values[i] ?? null);
      return settings ? [settings] : [];
    });
  }

  async delete(room: string): Promise<boolean> {
    return (await this.#redis.command.del(this.#key(room))) > 0;
  }

  async occupied(room: string): Promise<void> {
    await this.#redis.command.persist(this.#key(room));
  }

  async emptied(room: string): Promise<void> {
    const settings = await this.get(room);
    if (settings) await this.#redis.command.pexpire(this.#key(room), settings.emptyTimeout * 1000);
  }

  async claimFinished(room: string, createdAt: number): Promise<boolean> {
    const key = `${this.#prefix.replace(/roomsettings:$/, 'roomfinished:')}${room}:${createdAt}`;
    // Kept an hour: longer than any delete and expiry watcher of that incarnation can race.
    return (await this.#redis.command.set(key, '1', 'PX', 3_600_000, 'NX')) === 'OK';
  }

  close(): void {
    // Nothing of its own: the connection belongs to the control plane.
  }
}
