/**
 * The other participants of a room as the server announced them: the `joined` list, then
 * `participant.joined/left` and `track.published/unpublished/muted`. Plain state, no I/O: the
 * session applies the server's messages and emits what changed.
 */
import type { ParticipantInfo, TrackInfo } from '@geosfu/common/protocol';

export class Roster {
  readonly #participants = new Map<string, ParticipantInfo>();
  #self: string | null = null;

  /** Starts over with the `joined` answer's list; `self` (this session) is never listed. */
  reset(self: string, participants: readonly ParticipantInfo[]): void {
    this.#self = self;
    this.#participants.clear();
    for (const p of participants) this.join(p);
  }

  /** Adds (or replaces) a participant; false for this session itself. */
  join(participant: ParticipantInfo): boolean {
    if (participant.sessionId === this.#self) return false;
    this.#participants.set(participant.sessionId, {
      ...participant,
      tracks: participant.tracks.map((t) => ({ ...t })),
    });
    return true;
  }

  /** Removes a participant; returns what was known of them. */
  leave(sessionId: string): ParticipantInfo | undefined {
    const participant = this.#participants.get(sessionId);
    this.#participants.delete(sessionId);
    return participant;
  }

  /** Adds or replaces a track of a known participant; false when the participant is unknown. */
  publish(sessionId: string, track: TrackInfo): boolean {
    const p = this.#participants.get(sessionId);
    if (!p) return false;
    p.tracks = [...p.tracks.filter((t) => t.trackId !== track.trackId), { ...track }];
    return true;
  }

  unpublish(sessionId: string, trackId: string): boolean {
    const p = this.#participants.get(sessionId);
    if (!p) return false;
    p.tracks = p.tracks.filter((t) => t.trackId !== trackId);
    return true;
  }

  /** Sets a track's muted flag; false when the participant or the track is unknown. */
  mute(sessionId: string, trackId: string, muted: boolean): boolean {
    const track = this.#participants.get(sessionId)?.tracks.find((t) => t.trackId === trackId);
    if (!track) return false;
    track.muted = muted;
    return true;
  }

  get(sessionId: string): ParticipantInfo | undefined {
    return this.#participants.get(sessionId);
  }

  /** In the order they joined (or were listed by `joined`). */
  list(): ParticipantInfo[] {
    return [...this.#participants.values()];
  }
}
