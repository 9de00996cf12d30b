import { ClusterStateCodec, type StateOpenResult } from '@geosfu/common';
import type { RegistryKeys } from './keys.js';
import { RoomEventSchema, SessionRecordSchema } from './MemoryRoomStore.js';
import type { RoomEvent, SessionRecord } from './RoomStore.js';

/** A hash entry that did not verify: removed by the next mutation of its room, and counted. */
export interface JunkEntry {
  field: string;
  reason: Extract<StateOpenResult<unknown>, { ok: false }>['reason'];
  detail: string;
}

/**
 * The signed form of a room's state in Redis: session records in the room's hash (signed for
 * their key and field, so a record copied to another room or session id does not verify)
 * and events on the room's channel (signed for the channel, fresh, each once). What does
 * not verify is never believed: a junk session is not counted toward the room limit and is
 * removed; a forged event is dropped. See ClusterStateCodec.
 */
export class SignedRoomState {
  readonly #codec: ClusterStateCodec;
  readonly #keys: RegistryKeys;

  constructor(secret: string, keys: RegistryKeys) {
    this.#codec = new ClusterStateCodec(secret);
    this.#keys = keys;
  }

  sealEvent(room: string, event: RoomEvent): string {
    return this.#codec.seal('room-event', this.#keys.roomChannel(room), event);
  }

  sealSession(room: string, session: SessionRecord): string {
    return this.#codec.seal('session', this.#sessionContext(room, session.sessionId), session);
  }

  openEvent(channel: string, raw: string): StateOpenResult<RoomEvent> {
    return this.#codec.open(raw, {
      kind: 'room-event',
      context: channel,
      schema: RoomEventSchema,
      freshness: 'message',
    });
  }

  /** Splits a room hash (HGETALL) into the sessions that verify and the junk. */
  readSessions(
    room: string,
    entries: Record<string, string>,
  ): { sessions: SessionRecord[]; junk: JunkEntry[] } {
    const sessions: SessionRecord[] = [];
    const junk: JunkEntry[] = [];
    for (const [field, value] of Object.entries(entries)) {
      const result = this.#codec.open(value, {
        kind: 'session',
        context: this.#sessionContext(room, field),
        schema: SessionRecordSchema,
        // A session record lives as long as its session; only its node rewrites it.
        freshness: 'record',
      });
      if (!result.ok) junk.push({ field, reason: result.reason, detail: result.detail });
      else if (result.value.sessionId !== field) {
        // Signed for this field, yet naming another session: a bug of a writer, not a forger.
        junk.push({ field, reason: 'invalid', detail: `the record is ${result.value.sessionId}` });
      } else sessions.push(result.value);
    }
    return { sessions, junk };
  }

  #sessionContext(room: string, sessionId: string): string {
    return `${this.#keys.roomSessions(room)}\n${sessionId}`;
  }
}
