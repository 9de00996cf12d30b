import {
  type LeaveReason,
  type Logger,
  type ParticipantInfo,
  type ServerMessage,
  SfuError,
  TypedEmitter,
} from '@geosfu/common';
import type { SessionRecord } from '@geosfu/registry';
import type { Participant } from './Participant.js';
import type { Publication } from './Publication.js';

export type RoomEvents = {
  participantJoined: [Participant];
  participantLeft: [Participant, LeaveReason];
  /** A local participant's track is ready to be forwarded, or ended. */
  trackPublished: [Participant, Publication];
  trackUnpublished: [Participant, Publication];
  /** A local participant published, unpublished or muted a track: mirror it to the store. */
  tracksChanged: [Participant];
  /** No local participant is left. */
  empty: [];
};

/**
 * One room as this node sees it: its local participants (with their media) and the sessions
 * other nodes hold in it (from the shared room store's events). Every track published here
 * is forwarded to every local participant that subscribes automatically; remote
 * participants appear in lists and events (their media arrives through relays).
 */
export class Room extends TypedEmitter<RoomEvents> {
  readonly name: string;
  #participants = new Map<string, Participant>();
  #byIdentity = new Map<string, string>();
  #remote = new Map<string, SessionRecord>();
  /** Tracks relayed from other nodes, published here like local ones. */
  #relayed = new Map<string, Publication>();
  /**
   * Remote tracks whose relayed media ended while their session still listed them (the
   * source node died, or the link went silent): local participants were told
   * `track.unpublished`, so the session's own later removal of the track is not announced
   * twice, and a relay rebuilt for it announces it again.
   */
  #withdrawn = new Set<string>();
  #nodeId: string;
  #region: string;
  #logger: Logger;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: { name: string; nodeId: string; region: string; logger: Logger }) {
    super((event, error) => options.logger.error({ err: error, event }, 'room listener threw'));
    this.name = options.name;
    this.#nodeId = options.nodeId;
    this.#region = options.region;
    this.#logger = options.logger;
  }

  /** Local participants. */
  get size(): number {
    return this.#participants.size;
  }

  get participants(): IterableIterator<Participant> {
    return this.#participants.values();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs joins of this room one at a time on this node, so a local join never interleaves
   * with another between the store's answer and the local add.
   */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The local session of an identity, if it is here. */
  sessionOf(identity: string): Participant | undefined {
    const sid = this.#byIdentity.get(identity);
    return sid === undefined ? undefined : this.#participants.get(sid);
  }

  get(sessionId: string): Participant | undefined {
    return this.#participants.get(sessionId);
  }

  /** Everyone in the room as clients see them: local participants and remote sessions. */
  infos(exceptSessionId?: string): ParticipantInfo[] {
    const local = [...this.#participants.values()].map((p) => p.info(this.#nodeId, this.#region));
    const remote = [...this.#remote.values()].map(recordInfo);
    return [...local, ...remote].filter((p) => p.sessionId !== exceptSessionId);
  }

  /** Adds a local participant; any older session of the identity has been ended already. */
  add(participant: Participant): void {
    if (this.#closed) throw new SfuError('SERVICE_UNAVAILABLE', 'the room is closing; join again');
    if (this.#byIdentity.has(participant.identity)) {
      throw new SfuError(
        'ALREADY_JOINED',
        `identity "${participant.identity}" is still in the room`,
      );
    }
    this.#remote.delete(participant.sessionId);
    this.#participants.set(participant.sessionId, participant);
    this.#byIdentity.set(participant.identity, participant.sessionId);
    this.broadcast(
      { type: 'participant.joined', participant: participant.info(this.#nodeId, this.#region) },
      participant.sessionId,
    );
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
      this.safeEmit('tracksChanged', participant);
      this.safeEmit('trackUnpublished', participant, publication);
    });
    if (participant.autoSubscribe) this.subscribeToAll(participant);
    this.safeEmit('participantJoined', participant);
  }

  /** Subscribes a local participant to every track of the room but its own. */
  subscribeToAll(participant: Participant): void {
    for (const other of this.#participants.values()) {
      if (other === participant) continue;
      for (const publication of other.publications.values()) participant.subscribe(publication);
    }
    for (const publication of this.#relayed.values()) {
      if (publication.participantSid !== participant.sessionId) participant.subscribe(publication);
    }
  }

  /**
   * A track relayed from another node: local participants subscribe as to any other. The
   * relay bridge created the publication and closes it; the room forgets it on its close.
   */
  addRelayed(publication: Publication): void {
    this.#relayed.set(publication.trackId, publication);
    // Muting happens at the source's node; here it pauses our subscribers (remoteTracks).
    const muted = this.#remoteTrack(publication.participantSid, publication.trackId)?.muted;
    publication.setMuted(muted === true);
    publication.once('close', () => this.#relayedEnded(publication));
    if (this.#withdrawn.delete(publication.trackId)) {
      const track = this.#remoteTrack(publication.participantSid, publication.trackId);
      if (track)
        this.broadcast({
          type: 'track.published',
          participantSid: publication.participantSid,
          track,
        });
    }
    for (const p of this.#participants.values()) {
      if (p.autoSubscribe && p.sessionId !== publication.participantSid) p.subscribe(publication);
    }
  }

  #relayedEnded(publication: Publication): void {
    const trackId = publication.trackId;
    // Replaced by a newer publication of the same track (a rebuilt link): nothing ended.
    if (this.#closed || this.#relayed.get(trackId) !== publication) return;
    this.#relayed.delete(trackId);
    // No room event says so when the source node died or its link went silent (the reaper's
    // `left` comes a while later, or never if the node is alive): the media is gone now.
    if (this.#remoteTrack(publication.participantSid, trackId)) {
      this.#withdrawn.add(trackId);
      this.broadcast({
        type: 'track.unpublished',
        participantSid: publication.participantSid,
        trackId,
      });
    }
  }

  #remoteTrack(sessionId: string, trackId: string): SessionRecord['tracks'][number] | undefined {
    return this.#remote.get(sessionId)?.tracks.find((t) => t.trackId === trackId);
  }

  #onPublished(owner: Participant, publication: Publication): void {
    publication.on('muted', (muted) => {
      this.broadcast({
        type: 'track.muted',
        participantSid: owner.sessionId,
        trackId: publication.trackId,
        muted,
      });
      this.safeEmit('tracksChanged', owner);
    });
    this.broadcast(
      { type: 'track.published', participantSid: owner.sessionId, track: publication.info() },
      owner.sessionId,
    );
    for (const other of this.#participants.values()) {
      if (other !== owner && other.autoSubscribe) other.subscribe(publication);
    }
    this.safeEmit('tracksChanged', owner);
    this.safeEmit('trackPublished', owner, publication);
  }

  /** Removes a local participant (idempotent per session) and tells the others why it left. */
  async remove(participant: Participant, reason: LeaveReason): Promise<void> {
    if (this.#participants.get(participant.sessionId) !== participant) return;
    this.#participants.delete(participant.sessionId);
    if (this.#byIdentity.get(participant.identity) === participant.sessionId) {
      this.#byIdentity.delete(participant.identity);
    }
    this.#logger.info(
      { sessionId: participant.sessionId, identity: participant.identity, reason },
      'participant left',
    );
    this.broadcast({
      type: 'participant.left',
      sessionId: participant.sessionId,
      identity: participant.identity,
      reason,
    });
    await participant.close();
    this.safeEmit('participantLeft', participant, reason);
    if (this.#participants.size === 0) this.safeEmit('empty');
  }

  // -------------------------------------------------------------------------------------
  // Sessions on other nodes, from the room store's events
  // -------------------------------------------------------------------------------------

  remoteJoined(record: SessionRecord): void {
    if (this.#participants.has(record.sessionId) || this.#remote.has(record.sessionId)) return;
    this.#remote.set(record.sessionId, record);
    this.broadcast({ type: 'participant.joined', participant: recordInfo(record) });
  }

  remoteLeft(record: SessionRecord, reason: LeaveReason): void {
    const before = this.#remote.get(record.sessionId);
    if (!before) return;
    this.#remote.delete(record.sessionId);
    // Its tracks end with it, as a local participant's do (whichever of this event and the
    // end of their relayed media comes first tells the subscribers, once).
    for (const track of before.tracks) {
      if (this.#withdrawn.delete(track.trackId)) continue;
      this.broadcast({
        type: 'track.unpublished',
        participantSid: record.sessionId,
        trackId: track.trackId,
      });
    }
    this.broadcast({
      type: 'participant.left',
      sessionId: record.sessionId,
      identity: record.identity,
      reason,
    });
  }

  /** A remote session's tracks changed: tell local participants what was added or removed. */
  remoteTracks(record: SessionRecord): void {
    const before = this.#remote.get(record.sessionId);
    if (!before) {
      this.remoteJoined(record);
      return;
    }
    this.#remote.set(record.sessionId, record);
    if (before.name !== record.name || before.metadata !== record.metadata)
      this.broadcast({ type: 'participant.updated', participant: recordInfo(record) });
    const old = new Map(before.tracks.map((t) => [t.trackId, t]));
    for (const track of record.tracks) {
      const was = old.get(track.trackId);
      if (!was)
        this.broadcast({ type: 'track.published', participantSid: record.sessionId, track });
      else if (was.muted !== track.muted) {
        this.#relayed.get(track.trackId)?.setMuted(track.muted);
        this.broadcast({
          type: 'track.muted',
          participantSid: record.sessionId,
          trackId: track.trackId,
          muted: track.muted,
        });
      }
      old.delete(track.trackId);
    }
    for (const gone of old.keys()) {
      if (this.#withdrawn.delete(gone)) continue; // announced when its media ended
      this.broadcast({
        type: 'track.unpublished',
        participantSid: record.sessionId,
        trackId: gone,
      });
    }
  }

  /** Remote sessions, e.g. to compare with the store after an outage. */
  get remoteSessions(): ReadonlyMap<string, SessionRecord> {
    return this.#remote;
  }

  broadcast(message: ServerMessage, exceptSessionId?: string): void {
    for (const p of this.#participants.values()) {
      if (p.sessionId !== exceptSessionId) p.send(message);
    }
  }

  close(): void {
    this.#closed = true;
    this.#relayed.clear();
    this.#withdrawn.clear();
    this.#remote.clear();
    this.removeAllListeners();
  }
}

function recordInfo(record: SessionRecord): ParticipantInfo {
  return {
    sessionId: record.sessionId,
    identity: record.identity,
    name: record.name,
    joinedAt: record.joinedAt,
    nodeId: record.nodeId,
    region: record.region,
    tracks: record.tracks,
    ...(record.metadata === undefined ? {} : { metadata: record.metadata }),
  };
}
