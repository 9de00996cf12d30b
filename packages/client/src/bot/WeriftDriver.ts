/**
 * The bot's PeerDriver: a BotPublisher (synthetic media) created when the bot publishes, and a
 * BotSubscriber (measurements) created on the first subscriber offer. werift gathers its host
 * candidates inside setLocalDescription, so the SDPs carry them and nothing trickles out.
 */
import type { Logger } from '@geosfu/common';
import type { IceCandidate, PeerTarget, SubscribedTrack, TrackKind } from '@geosfu/common/protocol';
import type { PeerDriver } from '../core/PeerDriver.js';
import type { PeerOptions } from './peer.js';
import { BotPublisher, type PublishOptions } from './publisher.js';
import { BotSubscriber, type SubscriberListener } from './subscriber.js';

export class WeriftDriver implements PeerDriver {
  readonly #peer: PeerOptions;
  readonly #log: Logger;
  readonly #listener: SubscriberListener;
  #publisher: BotPublisher | undefined;
  #subscriber: BotSubscriber | undefined;
  #closed = false;

  constructor(peer: PeerOptions, logger: Logger, listener: SubscriberListener) {
    this.#peer = peer;
    this.#log = logger;
    this.#listener = listener;
  }

  get publisher(): BotPublisher | undefined {
    return this.#publisher;
  }

  get subscriber(): BotSubscriber | undefined {
    return this.#subscriber;
  }

  /** The publisher (one per session); the caller negotiates and starts it. */
  createPublisher(options: PublishOptions, onPli: (kind: TrackKind) => void): BotPublisher {
    if (this.#closed) throw new Error('the PeerConnections are closed');
    if (this.#publisher) throw new Error('this session publishes already');
    this.#publisher = new BotPublisher(
      options,
      this.#peer,
      this.#log.child({ pc: 'publisher' }),
      onPli,
    );
    return this.#publisher;
  }

  applySubscriberOffer(sdp: string, tracks: readonly SubscribedTrack[]): Promise<void> {
    return this.#ensureSubscriber().applyOffer(sdp, tracks);
  }

  answerSubscriber(): Promise<string> {
    return this.#ensureSubscriber().createAnswer();
  }

  async addRemoteCandidate(target: PeerTarget, candidate: IceCandidate | null): Promise<void> {
    if (target === 'publisher') await this.#publisher?.addRemoteCandidate(candidate);
    else await this.#ensureSubscriber().addRemoteCandidate(candidate);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const results = await Promise.allSettled([this.#publisher?.close(), this.#subscriber?.close()]);
    for (const r of results) {
      if (r.status === 'rejected') {
        this.#log.warn({ err: r.reason }, 'closing a PeerConnection failed');
      }
    }
  }

  #ensureSubscriber(): BotSubscriber {
    if (!this.#subscriber) {
      this.#subscriber = new BotSubscriber(
        this.#peer,
        this.#log.child({ pc: 'subscriber' }),
        this.#listener,
      );
    }
    return this.#subscriber;
  }
}
