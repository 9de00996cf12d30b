import { InvalidStateError, type Logger, TypedEmitter } from '@geosfu/common';
import { codecFromSpec, OutgoingStream } from '@geosfu/media';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpTransceiver,
} from 'werift';
import type { OfferBody } from './messages.js';
import type { RelayBus } from './RelayBus.js';
import type { RelaySource } from './types.js';

export type RelayLinkState = 'new' | 'negotiating' | 'connected' | 'failed' | 'closed';

export type RelayLinkEvents = {
  state: [RelayLinkState];
  /** The first answer was applied and the PeerConnection connected: set-up time in ms. */
  established: [setupMs: number];
  /** A packet went out on the link (for metrics; called on the hot path, keep it cheap). */
  packetOut: [kind: 'audio' | 'video', bytes: number];
  /** A keyframe request came back from the far node's subscribers. */
  pli: [];
};

interface Carried {
  source: RelaySource;
  transceiver: RTCRtpTransceiver;
  /** Sends the source's packets on the transceiver; created and closed by the link. */
  stream: OutgoingStream;
  detach: () => void;
}

let nextLink = 1;

/**
 * The sending side of a relay: one werift PeerConnection from this node (which has the
 * publishers) to another node (which has subscribers), for one room. This side owns the link
 * and is the only one that offers, so renegotiation never collides. Each track is sent once,
 * whatever the number of subscribers on the far node; the far node fans it out.
 *
 * Each m-line is an `OutgoingStream` on a `sendonly` transceiver, so that werift hands the far
 * node's PLIs to our sender (pitfall 4), which passes them to the source publication.
 */
export class RelayLink extends TypedEmitter<RelayLinkEvents> {
  readonly room: string;
  readonly remoteNode: string;
  readonly linkId: string;
  #state: RelayLinkState = 'new';
  #pc: RTCPeerConnection;
  #signals: RelayBus;
  #logger: Logger;
  #carried = new Map<string, Carried>();
  #negotiating = false;
  #again = false;
  #createdAt = performance.now();
  #established = false;

  constructor(options: {
    room: string;
    localNode: string;
    remoteNode: string;
    signals: RelayBus;
    peerConfig: RTCPeerConnectionConfig;
    logger: Logger;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'relay link listener threw'),
    );
    this.room = options.room;
    this.remoteNode = options.remoteNode;
    this.linkId = `RL_${options.localNode}_${options.remoteNode}_${(nextLink++).toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
    this.#signals = options.signals;
    this.#logger = options.logger.child({
      component: 'relay-link',
      room: this.room,
      to: this.remoteNode,
      linkId: this.linkId,
    });
    this.#pc = new RTCPeerConnection(options.peerConfig);
    this.#pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') {
        this.#setState('connected');
        if (!this.#established) {
          this.#established = true;
          this.safeEmit('established', performance.now() - this.#createdAt);
        }
        // The far node's subscribers have been waiting for this: a keyframe of everything.
        for (const c of this.#carried.values()) {
          c.source.requestKeyframe();
          this.#startReports(c.transceiver);
        }
      } else if (state === 'failed' || state === 'closed') {
        if (this.#state !== 'closed') this.#fail(`PeerConnection ${state}`);
      }
    });
  }

  get state(): RelayLinkState {
    return this.#state;
  }

  /** Track ids the link carries now. */
  get trackIds(): string[] {
    return [...this.#carried.keys()];
  }

  get peerConnection(): RTCPeerConnection {
    return this.#pc;
  }

  /** Makes the link carry exactly these tracks, renegotiating if that changes anything. */
  setSources(sources: readonly RelaySource[]): void {
    if (this.#state === 'closed' || this.#state === 'failed')
      throw new InvalidStateError(`relay link ${this.linkId} is ${this.#state}`);
    const wanted = new Map(sources.map((s) => [s.track.trackId, s]));
    let changed = false;
    for (const [trackId, carried] of this.#carried) {
      if (wanted.has(trackId)) continue;
      carried.detach();
      carried.stream.close();
      this.#carried.delete(trackId);
      try {
        this.#pc.removeTrack(carried.transceiver.sender);
      } catch (error) {
        this.#logger.warn({ err: error }, 'removeTrack failed');
      }
      changed = true;
    }
    for (const [trackId, source] of wanted) {
      if (this.#carried.has(trackId)) continue;
      this.#add(source);
      changed = true;
    }
    if (changed || this.#state === 'new') this.#negotiate();
  }

  #add(source: RelaySource): void {
    const { codec, kind } = source.track;
    // A local track carries the source's codec so that the m-line negotiates exactly it.
    const carrier = new MediaStreamTrack({ kind, codec: codecFromSpec(codec) });
    const transceiver = this.#pc.addTransceiver(carrier, { direction: 'sendonly' });
    const stream = new OutgoingStream({
      sender: transceiver.sender,
      observer: {
        sent: (bytes) => this.safeEmit('packetOut', kind, bytes),
        keyframeRequested: (layer) => {
          this.safeEmit('pli');
          source.requestKeyframe(layer);
        },
      },
      // The source ended (it closes the stream); the monitor's next reconcile removes it.
      logger: this.#logger,
    });
    const detach = source.attach(stream);
    this.#carried.set(source.track.trackId, { source, transceiver, stream, detach });
    if (this.#pc.connectionState === 'connected') this.#startReports(transceiver);
  }

  /**
   * Sender reports from the start, not only from the first RTP packet (werift starts them
   * there): the far node judges the link by what it hears (PeerLiveness), and a link whose
   * tracks send nothing yet (a publisher still connecting, a silent source) is alive all the
   * same. runRtcp is idempotent and ends when the sender stops (removeTrack, close).
   */
  #startReports(transceiver: RTCRtpTransceiver): void {
    transceiver.sender.runRtcp().catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'relay sender reports stopped');
    });
  }

  /** One offer at a time; changes made meanwhile go into the next one. */
  #negotiate(): void {
    if (this.#negotiating) {
      this.#again = true;
      return;
    }
    this.#negotiating = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          if (this.#ended()) return;
          if (this.#state === 'new') this.#setState('negotiating');
          const offer = await this.#pc.createOffer();
          await this.#pc.setLocalDescription(offer);
          const body: OfferBody = {
            room: this.room,
            linkId: this.linkId,
            // All candidates are in the SDP: no trickle between servers.
            sdp: this.#pc.localDescription?.sdp ?? offer.sdp,
            tracks: [...this.#carried.values()]
              .filter((c) => c.transceiver.mid !== null)
              .map((c) => ({ ...c.source.track, mid: c.transceiver.mid ?? '' })),
          };
          const answer = await this.#signals.request(this.remoteNode, 'offer', body);
          if (this.#ended()) return;
          await this.#pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
          if (this.#pc.connectionState === 'connected') {
            for (const c of this.#carried.values()) c.source.requestKeyframe();
          }
        } while (this.#again);
      } catch (error) {
        this.#fail(`negotiation failed: ${(error as Error).message}`);
      } finally {
        this.#negotiating = false;
      }
    })();
  }

  /** Read through a method: TypeScript would keep an earlier narrowing across the awaits. */
  #ended(): boolean {
    return this.#state === 'closed' || this.#state === 'failed';
  }

  #fail(why: string): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#logger.warn({ why }, 'relay link failed');
    this.#setState('failed');
  }

  #setState(state: RelayLinkState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.safeEmit('state', state);
  }

  /** Closes the link; tells the far node unless it asked for the close itself. */
  async close(reason: string, notify = true): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    for (const c of this.#carried.values()) {
      c.detach();
      c.stream.close();
    }
    this.#carried.clear();
    if (notify) {
      await this.#signals
        .send(this.remoteNode, 'close', { room: this.room, linkId: this.linkId, reason })
        .catch((error: unknown) => this.#logger.debug({ err: error }, 'relay close not delivered'));
    }
    await this.#pc.close().catch(() => undefined);
    this.removeAllListeners();
  }
}
