import { InvalidStateError, type Logger, TypedEmitter } from '@geosfu/common';
import { codecFromSpec, OutgoingStream } from '@geosfu/media';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpTransceiver,
} from 'werift';
import type { LayerDemand, OfferBody, RelayTrack } from './messages.js';
import type { RelayBus } from './RelayBus.js';
import type { RelaySink, RelaySource } from './types.js';

export type RelayLinkState = 'new' | 'negotiating' | 'connected' | 'failed' | 'closed';

export type RelayLinkEvents = {
  state: [RelayLinkState];
  /** The first answer was applied and the PeerConnection connected: set-up time in ms. */
  established: [setupMs: number];
  /**
   * A packet went out on the link (for metrics; called on the hot path, keep it cheap).
   * `layer`: the simulcast layer whose m-line sent it; undefined on a track's only m-line.
   */
  packetOut: [kind: 'audio' | 'video', bytes: number, layer: number | undefined];
  /** A keyframe was asked for on the link: a PLI from the far node, or a layer (re)starting. */
  pli: [];
};

/** One m-line: a track's only one, or one simulcast layer's. */
interface Line {
  readonly layer: number;
  readonly transceiver: RTCRtpTransceiver;
  /** Sends the layer's packets on the transceiver; created and closed by the link. */
  readonly stream: OutgoingStream;
  /** A simulcast layer's line sends only while the far node asks for it; any other always. */
  sending: boolean;
}

interface Carried {
  readonly source: RelaySource;
  /** Lowest layer first; one line when the track is not simulcast. */
  readonly lines: readonly Line[];
  readonly simulcast: boolean;
  /** What the source hands every packet of the track to; routes it to its layer's line. */
  readonly sink: RelaySink;
  /** The highest layer the far node needs, as last told to the source (-1: none). */
  demand: number;
  /** Stops the source's packets; set once attached. */
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
 *
 * A simulcast video gets one m-line per layer, all created with the track (one
 * renegotiation), each passing its layer's packets through unchanged. A layer's m-line sends
 * nothing until the far node asks for that layer (`setDemand`, from its `layers` messages),
 * so the link carries exactly the layers the far node's subscribers need; the highest of them
 * goes to the source as this link's dynacast demand.
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
  /** The far node's last word on which layers it needs, by track (kept for tracks not added yet). */
  #demand = new Map<string, ReadonlySet<number>>();
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
          this.#requestKeyframes(c);
          for (const line of c.lines) this.#startReports(line.transceiver);
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

  /** Simulcast layer m-lines sending now (the far node asked for them), over all tracks. */
  get layersCarried(): number {
    let n = 0;
    for (const c of this.#carried.values())
      if (c.simulcast) for (const line of c.lines) if (line.sending) n++;
    return n;
  }

  /** Which layers of track `trackId` the link sends now (every line's layer when not simulcast). */
  layersSent(trackId: string): number[] {
    const c = this.#carried.get(trackId);
    return c ? c.lines.filter((l) => l.sending).map((l) => l.layer) : [];
  }

  /**
   * The far node's demand for the whole link (a `layers` message): the layers of each
   * simulcast track it needs; a track it does not name needs none. Resumed layers get a
   * keyframe request (the far node's subscribers wait for one to switch to them).
   */
  setDemand(tracks: readonly LayerDemand[]): void {
    if (this.#ended()) return;
    this.#demand = new Map(tracks.map((t) => [t.trackId, new Set(t.layers)]));
    for (const c of this.#carried.values()) if (c.simulcast) this.#applyDemand(c);
  }

  #applyDemand(c: Carried): void {
    const wanted = this.#demand.get(c.source.track.trackId);
    let highest = -1;
    for (const line of c.lines) {
      const sending = wanted?.has(line.layer) ?? false;
      if (sending) highest = line.layer;
      if (sending === line.sending) continue;
      line.sending = sending;
      this.#logger.debug(
        { trackId: c.source.track.trackId, layer: line.layer, sending },
        'relay layer toggled',
      );
      // Resuming asks the source for a keyframe of the layer (the stream starts at one).
      line.stream.setTargetLayer(sending ? line.layer : -1);
    }
    if (highest !== c.demand) {
      c.demand = highest;
      c.source.setDemand(c.sink, highest);
    }
  }

  #requestKeyframes(c: Carried): void {
    if (!c.simulcast) {
      c.source.requestKeyframe();
      return;
    }
    for (const line of c.lines) if (line.sending) c.source.requestKeyframe(line.layer);
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
      this.#carried.delete(trackId);
      for (const line of carried.lines) {
        line.stream.close();
        try {
          this.#pc.removeTrack(line.transceiver.sender);
        } catch (error) {
          this.#logger.warn({ err: error }, 'removeTrack failed');
        }
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
    const { codec, kind, layers } = source.track;
    const simulcast = kind === 'video' && layers !== undefined && layers.length > 1;
    const lines: Line[] = [];
    for (let layer = 0; layer < (simulcast ? (layers?.length ?? 1) : 1); layer++) {
      // A local track carries the source's codec so that the m-line negotiates exactly it.
      const carrier = new MediaStreamTrack({ kind, codec: codecFromSpec(codec) });
      const transceiver = this.#pc.addTransceiver(carrier, { direction: 'sendonly' });
      const tag = simulcast ? layer : undefined;
      const stream = new OutgoingStream({
        sender: transceiver.sender,
        observer: {
          sent: (bytes) => this.safeEmit('packetOut', kind, bytes, tag),
          // A PLI from the far node, or the stream waiting for a keyframe to (re)start its layer.
          keyframeRequested: (asked) => {
            this.safeEmit('pli');
            source.requestKeyframe(asked);
          },
        },
        // A layer's line sends only that layer, from its first keyframe on, and only once the
        // far node asks for it (setTargetLayer): a resumed layer starts at a keyframe, and the
        // stream keeps the line's sequence numbers and timestamps continuous across the pause.
        initialLayer: simulcast ? -1 : 0,
        clockRate: codec.clockRate,
        // The source ended (it closes the stream); the monitor's next reconcile removes it.
        logger: this.#logger,
      });
      lines.push({ layer, transceiver, stream, sending: !simulcast });
    }
    const sink: RelaySink = {
      // Hot path: each layer's packets go to that layer's m-line only, if it sends.
      send: (packet) => {
        const line = lines[packet.layer];
        if (line?.sending) line.stream.send(packet);
      },
      close: () => {
        for (const line of lines) line.stream.close();
      },
    };
    const carried: Carried = { source, lines, simulcast, sink, demand: -1, detach: () => {} };
    this.#carried.set(source.track.trackId, carried);
    carried.detach = source.attach(sink);
    if (simulcast) {
      // Nothing needed until the far node says so (the publisher may pause every layer for
      // this link); a demand that came before the track applies now.
      source.setDemand(sink, -1);
      this.#applyDemand(carried);
    }
    if (this.#pc.connectionState === 'connected')
      for (const line of lines) this.#startReports(line.transceiver);
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
            tracks: [...this.#carried.values()].flatMap((c) => describe(c)),
          };
          const answer = await this.#signals.request(this.remoteNode, 'offer', body);
          if (this.#ended()) return;
          await this.#pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
          if (this.#pc.connectionState === 'connected') {
            for (const c of this.#carried.values()) this.#requestKeyframes(c);
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
      for (const line of c.lines) line.stream.close();
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

/** A carried track as the offer names it; nothing until every one of its m-lines has a mid. */
function describe(c: Carried): RelayTrack[] {
  const mids = c.lines.map((l) => l.transceiver.mid);
  const [first] = mids;
  if (first === undefined || first === null || mids.some((m) => m === null)) return [];
  const { layers, ...track } = c.source.track;
  if (!c.simulcast || !layers) return [{ ...track, mid: first }];
  return [
    {
      ...track,
      mid: first,
      layers: layers.map((l, k) => ({ ...l, mid: mids[k] ?? '' })),
    },
  ];
}
