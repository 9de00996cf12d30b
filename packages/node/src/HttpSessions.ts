import {
  type AccessToken,
  type IceServer,
  type LeaveReason,
  type Logger,
  SfuError,
  type TokenService,
} from '@geosfu/common';
import { HttpSession, type HttpSessionKind } from './HttpSession.js';
import type { NodeMetrics } from './metrics.js';
import {
  checkPublishOffer,
  checkViewerOffer,
  offeredTracks,
  withBundleOnlyPorts,
} from './publishOffer.js';
import type { SessionChannel, Sessions } from './Sessions.js';
import { parseSdpFragment } from './sdpFragment.js';

/** What a POST creates: the session and the node's SDP answer. */
export interface HttpSessionCreated {
  session: HttpSession;
  answer: string;
  /** The ICE servers of this session (TURN credentials minted for it), as `joined` carries. */
  iceServers: readonly IceServer[];
}

/**
 * The WHIP and WHEP sessions of a node (RFC 9725; WHEP, draft-ietf-wish-whep): it checks the
 * request, joins a participant through `Sessions` like a websocket's, gives it the offer, and
 * owns the `HttpSession` resources until they end. Closing it ends them all.
 */
export class HttpSessions {
  readonly #sessions: Sessions;
  readonly #tokens: TokenService;
  readonly #metrics: NodeMetrics;
  readonly #logger: Logger;
  readonly #byId = new Map<string, HttpSession>();
  #closed = false;

  constructor(options: {
    sessions: Sessions;
    tokens: TokenService;
    metrics: NodeMetrics;
    logger: Logger;
  }) {
    this.#sessions = options.sessions;
    this.#tokens = options.tokens;
    this.#metrics = options.metrics;
    this.#logger = options.logger.child({ component: 'http-sessions' });
  }

  get size(): number {
    return this.#byId.size;
  }

  /** WHIP: a participant that publishes what `sdp` sends. */
  async publish(
    room: string,
    token: string | undefined,
    offered: string,
  ): Promise<HttpSessionCreated> {
    const sdp = withBundleOnlyPorts(offered);
    const access = await this.#verify(room, token);
    if (!access.grants.canPublish)
      throw new SfuError('PERMISSION_DENIED', 'this token does not allow publishing');
    // Checked before joining, so a bad offer is not seen by the room as a join and a leave.
    const offer = checkPublishOffer(sdp);
    const tracks = offeredTracks(offer);
    return this.#create('whip', token, offer.ice, {}, async (channel) => {
      const participant = channel.participant;
      if (!participant) throw new SfuError('CLOSED', 'the session ended while it was set up');
      const reply = await participant.publish({ type: 'publish', sdp, tracks });
      if (reply.type !== 'publish.answer')
        throw new SfuError('NEGOTIATION_FAILED', 'the publisher gave no answer');
      return reply.sdp;
    });
  }

  /** WHEP: a participant that receives the room's tracks (or one identity's) on `sdp`'s m-lines. */
  async view(
    room: string,
    token: string | undefined,
    offered: string,
    watch: string | undefined,
  ): Promise<HttpSessionCreated> {
    const sdp = withBundleOnlyPorts(offered);
    const access = await this.#verify(room, token);
    if (!access.grants.canSubscribe)
      throw new SfuError('PERMISSION_DENIED', 'this token does not allow subscribing');
    const offer = checkViewerOffer(sdp);
    return this.#create(
      'whep',
      token,
      offer.ice,
      { viewer: true, ...(watch === undefined ? {} : { watch }) },
      async (channel) => {
        const participant = channel.participant;
        if (!participant) throw new SfuError('CLOSED', 'the session ended while it was set up');
        return participant.answerViewerOffer(sdp);
      },
    );
  }

  async #verify(room: string, token: string | undefined): Promise<AccessToken> {
    const access = await this.#tokens.verify(token);
    if (access.room !== room) {
      throw new SfuError(
        'PERMISSION_DENIED',
        `the token is for room "${access.room}", not "${room}"; mint one for this room`,
      );
    }
    return access;
  }

  async #create(
    kind: HttpSessionKind,
    token: string | undefined,
    ice: { ufrag: string; pwd: string },
    options: { viewer?: boolean; watch?: string },
    negotiate: (channel: SessionChannel) => Promise<string>,
  ): Promise<HttpSessionCreated> {
    if (this.#closed) throw new SfuError('NODE_DRAINING', 'this node is closing');
    const session = new HttpSession({
      kind,
      ice,
      leave: async (s, reason) => {
        this.#byId.delete(s.id);
        await this.#sessions.leave(s, reason);
      },
    });
    this.#byId.set(session.id, session);
    try {
      const { room, participant, reply } = await this.#sessions.join(
        session,
        { type: 'join', ...(token === undefined ? {} : { token }), autoSubscribe: kind === 'whep' },
        options,
      );
      session.joined(room, participant);
      if (session.ended) {
        // Ended (the node closing) while it joined: leave through the one way out.
        await this.#sessions.leave(session, 'server-shutdown');
        throw new SfuError('NODE_DRAINING', 'this node is closing');
      }
      participant.on('failed', () => void session.end('peer-connection-failed'));
      participant.start();
      const answer = await negotiate(session);
      this.#metrics.httpSessions.inc({ kind });
      this.#logger.info(
        { kind, room: room.name, sessionId: participant.sessionId, identity: participant.identity },
        'HTTP session created',
      );
      const iceServers = reply.type === 'joined' ? reply.iceServers : [];
      return { session, answer, iceServers };
    } catch (error) {
      // A join that failed left nothing; one whose offer failed leaves the room again.
      await session.end('disconnected');
      throw error;
    }
  }

  get(id: string): HttpSession {
    const session = this.#byId.get(id);
    if (!session)
      throw new SfuError('NOT_FOUND', 'no such WHIP/WHEP session (it ended, or never existed)');
    return session;
  }

  /**
   * PATCH: trickle ICE candidates (RFC 9725 section 4.3.1). Credentials other than the
   * offer's are an ICE restart, which the node does not do (422, section 4.3.2: the client
   * then starts a new session).
   */
  async patch(id: string, body: string, ifMatch: string | undefined): Promise<void> {
    const session = this.get(id);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== session.etag) {
      throw new SfuError(
        'PRECONDITION_FAILED',
        `If-Match ${ifMatch} is not this session's ETag ${session.etag}`,
      );
    }
    const fragment = parseSdpFragment(body);
    const restart =
      (fragment.ufrag !== undefined && fragment.ufrag !== session.ice.ufrag) ||
      (fragment.pwd !== undefined && fragment.pwd !== session.ice.pwd);
    if (restart) {
      throw new SfuError(
        'ICE_RESTART_UNSUPPORTED',
        'the fragment has new ICE credentials (an ICE restart), which this node does not do; DELETE this session and POST a new offer',
      );
    }
    const participant = session.participant;
    if (!participant || session.ended) throw new SfuError('NOT_FOUND', 'the session has ended');
    const target = session.kind === 'whip' ? 'publisher' : 'subscriber';
    for (const candidate of fragment.candidates) await participant.trickle(target, candidate);
  }

  /** DELETE: the client leaves. */
  async delete(id: string): Promise<void> {
    await this.get(id).end('left');
  }

  /** Ends every session (a drain or the node's close). */
  async endAll(reason: LeaveReason): Promise<void> {
    await Promise.allSettled([...this.#byId.values()].map((s) => s.end(reason)));
  }

  async close(reason: LeaveReason): Promise<void> {
    this.#closed = true;
    await this.endAll(reason);
  }
}
