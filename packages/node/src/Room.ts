import {
  type LeaveReason,
  type Logger,
  type ServerMessage,
  SfuError,
  TypedEmitter,
} from '@geosfu/common';
import type { Participant } from './Participant.js';
import type { Publication } from './Publication.js';

export type RoomEvents = {
  participantLeft: [Participant, LeaveReason];
  empty: [];
};

/**
 * The participants of one room on this node, and the wiring between them: every published
 * track is forwarded to every other participant that subscribes automatically.
 */
export class Room extends TypedEmitter<RoomEvents> {
  readonly name: string;
  #participants = new Map<string, Participant>();
  #bySessionOf = new Map<string, string>();
  #nodeId: string;
  #region: string;
  #maxParticipants: number;
  #logger: Logger;
  #closed = false;

  constructor(options: {
    name: string;
    nodeId: string;
    region: string;
    maxParticipants: number;
    logger: Logger;
  }) {
    super((event, error) => options.logger.error({ err: error, event }, 'room listener threw'));
    this.name = options.name;
    this.#nodeId = options.nodeId;
    this.#region = options.region;
    this.#maxParticipants = options.maxParticipants;
    this.#logger = options.logger;
  }

  get size(): number {
    return this.#participants.size;
  }

  get participants(): IterableIterator<Participant> {
    return this.#participants.values();
  }

  /** The session of an identity, if it is in the room. */
  sessionOf(identity: string): Participant | undefined {
    const sid = this.#bySessionOf.get(identity);
    return sid === undefined ? undefined : this.#participants.get(sid);
  }

  /**
   * Checks that `identity` may join. A session replacing its own identity (a page refresh)
   * does not count against the limit, since the old session leaves as the new one joins.
   */
  assertCanJoin(identity: string): void {
    if (this.#closed) throw new SfuError('SERVICE_UNAVAILABLE', 'the room is closing; join again');
    const replacing = this.#bySessionOf.has(identity) ? 1 : 0;
    if (this.#participants.size - replacing >= this.#maxParticipants) {
      throw new SfuError(
        'ROOM_FULL',
        `room "${this.name}" has its maximum of ${this.#maxParticipants} participants`,
      );
    }
  }

  /** Adds a participant; the caller has already replaced any older session of the identity. */
  add(participant: Participant): void {
    this.assertCanJoin(participant.identity);
    if (this.#bySessionOf.has(participant.identity)) {
      throw new SfuError(
        'ALREADY_JOINED',
        `identity "${participant.identity}" is still in the room`,
      );
    }
    const info = participant.info(this.#nodeId, this.#region);
    this.#participants.set(participant.sessionId, participant);
    this.#bySessionOf.set(participant.identity, participant.sessionId);
    this.broadcast({ type: 'participant.joined', participant: info }, participant.sessionId);

    participant.on('published', (publication) => this.#onPublished(participant, publication));
    participant.on('unpublished', (publication) => {
      this.broadcast(
        {
          type: 'track.unpublished',
          participantSid: participant.sessionId,
          trackId: publication.trackId,
        },
        participant.sessionId,
      );
    });
    // Existing tracks flow to the newcomer.
    if (participant.autoSubscribe) {
      for (const other of this.#participants.values()) {
        if (other === participant) continue;
        for (const publication of other.publications.values()) participant.subscribe(publication);
      }
    }
  }

  #onPublished(owner: Participant, publication: Publication): void {
    publication.on('muted', (muted) =>
      this.broadcast({
        type: 'track.muted',
        participantSid: owner.sessionId,
        trackId: publication.trackId,
        muted,
      }),
    );
    this.broadcast(
      { type: 'track.published', participantSid: owner.sessionId, track: publication.info() },
      owner.sessionId,
    );
    for (const other of this.#participants.values()) {
      if (other !== owner && other.autoSubscribe) other.subscribe(publication);
    }
  }

  /** Removes a participant (idempotent per session) and tells the others why it left. */
  async remove(participant: Participant, reason: LeaveReason): Promise<void> {
    if (this.#participants.get(participant.sessionId) !== participant) return;
    this.#participants.delete(participant.sessionId);
    if (this.#bySessionOf.get(participant.identity) === participant.sessionId) {
      this.#bySessionOf.delete(participant.identity);
    }
    this.#logger.info(
      { sessionId: participant.sessionId, identity: participant.identity, reason },
      'participant left',
    );
    await participant.close();
    this.broadcast({
      type: 'participant.left',
      sessionId: participant.sessionId,
      identity: participant.identity,
      reason,
    });
    this.safeEmit('participantLeft', participant, reason);
    if (this.#participants.size === 0) this.safeEmit('empty');
  }

  broadcast(message: ServerMessage, exceptSessionId?: string): void {
    for (const p of this.#participants.values()) {
      if (p.sessionId !== exceptSessionId) p.send(message);
    }
  }

  close(): void {
    this.#closed = true;
    this.removeAllListeners();
  }
}
