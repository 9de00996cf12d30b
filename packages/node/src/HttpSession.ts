import { randomBytes } from 'node:crypto';
import type { LeaveReason, ServerMessage } from '@geosfu/common';
import type { Participant } from './Participant.js';
import type { Room } from './Room.js';
import type { SessionChannel } from './Sessions.js';

/** WHIP publishes (RFC 9725), WHEP watches. */
export type HttpSessionKind = 'whip' | 'whep';

/**
 * One WHIP or WHEP session: a participant whose signalling is HTTP. The client created it with
 * a POST and holds its resource URL (`/v1/sessions/<id>`), which it PATCHes with ICE
 * candidates and DELETEs to leave. The id is a fresh 128-bit secret, not the participant's
 * session id: that one is told to everyone in the room, and whoever holds the URL can end
 * the session (RFC 9725 section 4.2: the resource URL is the session's capability).
 *
 * There is no channel back to the client: room events (`participant.joined`, ...) are
 * dropped, and the session ends by DELETE, by its PeerConnection dying (the participant's
 * liveness), or by the node draining or closing.
 */
export class HttpSession implements SessionChannel {
  readonly id = randomBytes(16).toString('base64url');
  readonly kind: HttpSessionKind;
  /** The ICE session's entity tag (RFC 9725 section 4.3.1): fixed, as ICE never restarts. */
  readonly etag = `"${randomBytes(8).toString('hex')}"`;
  /** The client's ICE credentials from its offer: a PATCH with others is an ICE restart. */
  readonly ice: { ufrag: string; pwd: string };
  #participant: Participant | undefined;
  #room: Room | undefined;
  #ended: LeaveReason | undefined;
  readonly #leave: (session: HttpSession, reason: LeaveReason) => Promise<void>;

  constructor(options: {
    kind: HttpSessionKind;
    ice: { ufrag: string; pwd: string };
    /** Takes the participant out of its room (`Sessions.leave`) and forgets the session. */
    leave: (session: HttpSession, reason: LeaveReason) => Promise<void>;
  }) {
    this.kind = options.kind;
    this.ice = options.ice;
    this.#leave = options.leave;
  }

  get participant(): Participant | undefined {
    return this.#participant;
  }

  get room(): Room | undefined {
    return this.#room;
  }

  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** The join succeeded: the participant is in `room`. */
  joined(room: Room, participant: Participant): void {
    this.#room = room;
    this.#participant = participant;
  }

  send(_message: ServerMessage): void {
    // WHIP and WHEP have no channel from server to client; what matters to such a client
    // (its media) flows on its PeerConnection.
  }

  /** Ends the session once: the participant leaves its room with `reason`. */
  async end(reason: LeaveReason): Promise<void> {
    if (this.#ended !== undefined) return;
    this.#ended = reason;
    await this.#leave(this, reason);
  }
}
