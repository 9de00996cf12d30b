import { type Logger, SfuError, TypedEmitter } from '@geosfu/common';
import type { NodeRegistry } from '@geosfu/registry';
import type { RTCPeerConnectionConfig } from 'werift';
import type { AnswerBody, CloseBody, LayersBody, OfferBody } from './messages.js';
import type { RelayBus } from './RelayBus.js';
import { RelayLink } from './RelayLink.js';
import {
  type RelayedTrack,
  RelayReceiver,
  type RelayReceiverCloseReason,
} from './RelayReceiver.js';
import type { RelaySource } from './types.js';

/** What the monitor needs to know about the node's rooms. */
export interface RelayRoomView {
  /** Tracks published on this node in the room: what a link from here must carry. */
  localSources(room: string): RelaySource[];
  /** The other nodes that have at least one session in the room. */
  remoteNodes(room: string): ReadonlySet<string>;
}

export type RelayManagerEvents = {
  /** A track relayed from another node arrived: publish it locally. */
  relayedTrack: [room: string, from: string, track: RelayedTrack];
  relayedTrackEnded: [room: string, trackId: string];
  linkOpened: [link: RelayLink];
  linkClosed: [link: RelayLink, reason: string];
  linkEstablished: [link: RelayLink, setupMs: number];
  receiverOpened: [receiver: RelayReceiver];
  receiverClosed: [receiver: RelayReceiver, reason: RelayReceiverCloseReason];
};

/**
 * Receiver closes that this side decided: the sending node is told, so that it rebuilds if
 * the room still needs the link. Also on `node-down`: a dead node never reads it, but a live
 * one that the registry lost (its record expired while it was cut off from Redis or stalled)
 * would otherwise keep sending on a link that nobody receives.
 */
const TELL_SENDER: ReadonlySet<RelayReceiverCloseReason> = new Set([
  'peer-timeout',
  'peer-connection-failed',
  'node-down',
]);

/** Rebuilds of a failed link back off from this, doubling, up to the cap, with jitter. */
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/**
 * The room monitor: for every room this node has participants in, it keeps exactly one
 * outgoing relay link to each other node that has sessions in the room, carrying every
 * track published here, and closes it when that node has nobody left (or died). Links are
 * keyed by (room, remote node), so concurrent joins on two nodes converge to one link per
 * direction by construction: each node only ever creates links it sends on.
 *
 * It also answers the other nodes' offers (the receiving side) and hands their tracks to
 * the node as relayed tracks.
 */
export class RelayManager extends TypedEmitter<RelayManagerEvents> {
  readonly nodeId: string;
  #signals: RelayBus;
  #view: RelayRoomView;
  #senderConfig: RTCPeerConnectionConfig;
  #receiverConfig: RTCPeerConnectionConfig;
  readonly #udpReceiveBuffer: number;
  #logger: Logger;
  #links = new Map<string, RelayLink>();
  #receivers = new Map<string, RelayReceiver>();
  #pending = new Set<string>();
  #backoff = new Map<string, { attempts: number; timer: NodeJS.Timeout | undefined }>();
  #peerTimeoutMs: number;
  #clock: { now(): number } | undefined;
  #offNodeDown: () => void;
  #closed = false;

  constructor(options: {
    nodeId: string;
    signals: RelayBus;
    view: RelayRoomView;
    /** Sending side: a full ICE agent (it is the controlling side toward an ICE-lite node). */
    senderConfig: RTCPeerConnectionConfig;
    /** Receiving side: the node's usual ICE-lite configuration. */
    receiverConfig: RTCPeerConnectionConfig;
    /** SFU_UDP_RECEIVE_BUFFER: SO_RCVBUF of a receiving link's socket (0: system default). */
    udpReceiveBuffer?: number;
    /** SFU_PEER_TIMEOUT_MS: a receiving link silent (or never connected) this long is closed. */
    peerTimeoutMs: number;
    /** The clock silences are measured on: the node's StallDetector (its own stops skipped). */
    clock?: { now(): number };
    /** The registry: when a node leaves it, every link received from that node is closed. */
    nodes: Pick<NodeRegistry, 'on'>;
    logger: Logger;
  }) {
    super((event, error) =>
      options.logger.error({ err: error, event }, 'relay manager listener threw'),
    );
    this.nodeId = options.nodeId;
    this.#signals = options.signals;
    this.#view = options.view;
    this.#senderConfig = options.senderConfig;
    this.#receiverConfig = options.receiverConfig;
    this.#udpReceiveBuffer = options.udpReceiveBuffer ?? 0;
    this.#logger = options.logger.child({ component: 'relay' });
    this.#peerTimeoutMs = options.peerTimeoutMs;
    this.#clock = options.clock;
    // A dead sender stops sending but never says so, and this side (ICE-lite) never sees its
    // PeerConnection fail: without this its tracks would live until the silence watch fires.
    // Not on `replaced` (a restart under the same id): the new process's first offer may
    // arrive before its record, and its links replace the old process's anyway (handleOffer).
    this.#offNodeDown = options.nodes.on('nodeDown', (node, reason) => {
      if (node.id !== this.nodeId && reason !== 'replaced') void this.closeNode(node.id, reason);
    });
  }

  /** Outgoing links, for metrics and tests. */
  get links(): readonly RelayLink[] {
    return [...this.#links.values()];
  }

  get receivers(): readonly RelayReceiver[] {
    return [...this.#receivers.values()];
  }

  /** Schedules a reconcile of the room; calls in one tick are merged. */
  reconcile(room: string): void {
    if (this.#closed || this.#pending.has(room)) return;
    this.#pending.add(room);
    setImmediate(() => {
      this.#pending.delete(room);
      if (!this.#closed) this.#reconcileNow(room);
    });
  }

  #reconcileNow(room: string): void {
    const sources = this.#view.localSources(room);
    const remotes = sources.length > 0 ? this.#view.remoteNodes(room) : new Set<string>();
    for (const [key, link] of this.#links) {
      if (link.room !== room) continue;
      if (!remotes.has(link.remoteNode)) void this.#closeLink(key, link, 'no-participants');
    }
    for (const remote of remotes) {
      const key = `${room}\n${remote}`;
      const waiting = this.#backoff.get(key);
      if (waiting?.timer) continue; // a rebuild is scheduled
      let link = this.#links.get(key);
      if (!link) {
        link = this.#openLink(key, room, remote);
      }
      link.setSources(sources);
    }
  }

  #openLink(key: string, room: string, remote: string): RelayLink {
    const link = new RelayLink({
      room,
      localNode: this.nodeId,
      remoteNode: remote,
      signals: this.#signals,
      peerConfig: this.#senderConfig,
      logger: this.#logger,
    });
    this.#links.set(key, link);
    link.on('established', (ms) => {
      this.#backoff.delete(key);
      this.safeEmit('linkEstablished', link, ms);
    });
    link.on('state', (state) => {
      if (state !== 'failed') return;
      void this.#closeLink(key, link, 'link-failed').then(() => this.#scheduleRebuild(key, room));
    });
    this.#logger.info({ room, to: remote, linkId: link.linkId }, 'relay link opened');
    this.safeEmit('linkOpened', link);
    return link;
  }

  #scheduleRebuild(key: string, room: string): void {
    if (this.#closed) return;
    const entry = this.#backoff.get(key) ?? { attempts: 0, timer: undefined };
    const delay =
      Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** entry.attempts) * (0.75 + Math.random() / 2);
    entry.attempts++;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.reconcile(room);
    }, delay);
    this.#backoff.set(key, entry);
    this.#logger.info(
      { room, attempt: entry.attempts, delayMs: Math.round(delay) },
      'relay link rebuild scheduled',
    );
  }

  async #closeLink(key: string, link: RelayLink, reason: string, notify = true): Promise<void> {
    if (this.#links.get(key) === link) this.#links.delete(key);
    this.#logger.info(
      { room: link.room, to: link.remoteNode, linkId: link.linkId, reason },
      'relay link closed',
    );
    this.safeEmit('linkClosed', link, reason);
    await link.close(reason, notify);
  }

  /** The receiving side: an offer from the node that owns the link. */
  async handleOffer(from: string, body: OfferBody): Promise<AnswerBody> {
    if (this.#closed) throw new SfuError('CLOSED', 'this node is shutting down');
    let receiver = this.#receivers.get(body.linkId);
    if (!receiver) {
      const created = new RelayReceiver({
        room: body.room,
        remoteNode: from,
        linkId: body.linkId,
        peerConfig: this.#receiverConfig,
        udpReceiveBuffer: this.#udpReceiveBuffer,
        peerTimeoutMs: this.#peerTimeoutMs,
        ...(this.#clock ? { clock: this.#clock } : {}),
        sendLayers: (layers) => this.#signals.send(from, 'layers', layers),
        logger: this.#logger,
      });
      receiver = created;
      this.#receivers.set(body.linkId, created);
      created.on('track', (track) => this.safeEmit('relayedTrack', body.room, from, track));
      created.on('trackEnded', (trackId) => this.safeEmit('relayedTrackEnded', body.room, trackId));
      created.on('closed', (reason) => {
        if (this.#receivers.get(body.linkId) === created) this.#receivers.delete(body.linkId);
        this.#logger.info(
          { room: body.room, from, linkId: body.linkId, reason },
          'relay receiver closed',
        );
        this.safeEmit('receiverClosed', created, reason);
        if (TELL_SENDER.has(reason) && !this.#closed) {
          // The existing close-by-peer path: the sender drops its side and rebuilds with
          // backoff if the room still spans both nodes.
          this.#signals
            .send(from, 'close', { room: body.room, linkId: body.linkId, reason })
            .catch((error: unknown) =>
              this.#logger.debug({ err: error }, 'relay close not delivered'),
            );
        }
      });
      // A newer link from the same node for the same room replaces an older one.
      for (const other of [...this.#receivers.values()]) {
        if (other !== created && other.room === body.room && other.remoteNode === from)
          void other.close('replaced');
      }
      this.safeEmit('receiverOpened', created);
    }
    return receiver.handleOffer(body);
  }

  /** A close from the other side of a link, whichever side this node is. */
  async handleClose(from: string, body: CloseBody): Promise<void> {
    const receiver = this.#receivers.get(body.linkId);
    if (receiver && receiver.remoteNode === from) await receiver.close('closed-by-peer');
    const key = `${body.room}\n${from}`;
    const link = this.#links.get(key);
    if (link && link.linkId === body.linkId) {
      await this.#closeLink(key, link, 'closed-by-peer', false);
      // The far node may want it again later (it restarted): reconcile decides.
      this.#scheduleRebuild(key, body.room);
    }
  }

  /**
   * The far node of one of our links says which simulcast layers it needs on it. A message
   * for a link we no longer have (closed, rebuilt) is dropped: the far node repeats its
   * demand to the new link once that connects.
   */
  handleLayers(from: string, body: LayersBody): void {
    const link = this.#links.get(`${body.room}\n${from}`);
    if (!link || link.linkId !== body.linkId) {
      this.#logger.debug({ from, linkId: body.linkId }, 'relay layers for a link we do not have');
      return;
    }
    link.setDemand(body.tracks);
  }

  /**
   * The node left the registry (its record expired, or it deregistered): every link
   * received from it is closed at once, ending its relayed tracks. Links this
   * node sends to it close when its sessions are reaped (reconcile).
   */
  async closeNode(nodeId: string, why: string): Promise<void> {
    const closing = [...this.#receivers.values()].filter((r) => r.remoteNode === nodeId);
    if (closing.length === 0) return;
    this.#logger.info({ node: nodeId, why, receivers: closing.length }, 'relay source node down');
    await Promise.allSettled(closing.map((r) => r.close('node-down')));
  }

  /** The node left the room: close everything of it, both directions. */
  async closeRoom(room: string): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [key, link] of this.#links)
      if (link.room === room) closing.push(this.#closeLink(key, link, 'room-closed'));
    for (const receiver of this.#receivers.values())
      if (receiver.room === room) closing.push(receiver.close('room-closed'));
    await Promise.allSettled(closing);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offNodeDown();
    for (const entry of this.#backoff.values()) clearTimeout(entry.timer);
    this.#backoff.clear();
    await Promise.allSettled([
      ...[...this.#links].map(([key, link]) => this.#closeLink(key, link, 'node-shutdown')),
      ...[...this.#receivers.values()].map((r) => r.close('node-shutdown')),
    ]);
    this.removeAllListeners();
  }
}
