/**
 * The demo page's PeerDriver: the browser's RTCPeerConnections. The subscriber exists from the
 * join on; the publisher when the page publishes its camera and microphone.
 */
import type { IceCandidate, PeerTarget, SubscribedTrack } from '@geosfu/common/protocol';
import type { PublishTracks } from '../core/ClientSession.js';
import type { DriverContext, PeerDriver } from '../core/PeerDriver.js';

export interface BrowserDriverHooks {
  /** A remote track arrived on the subscriber. */
  track(): void;
  /** A connection's state changed. */
  connectionState(target: PeerTarget, state: RTCPeerConnectionState): void;
}

/** Sends the publisher's offer and returns the server's answer (`ClientSession.publish`). */
export type PublishExchange = (
  sdp: string,
  tracks: PublishTracks,
) => Promise<{ sdp: string; tracks: { mid: string; trackId: string }[] }>;

function toCandidateInit(candidate: IceCandidate): RTCIceCandidateInit {
  return {
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid ?? null,
    sdpMLineIndex: candidate.sdpMLineIndex ?? null,
    usernameFragment: candidate.usernameFragment ?? null,
  };
}

export class BrowserDriver implements PeerDriver {
  readonly subscriber: RTCPeerConnection;
  #publisher: RTCPeerConnection | null = null;
  readonly #context: DriverContext;
  readonly #hooks: BrowserDriverHooks;
  readonly #iceServers: RTCIceServer[];
  #closed = false;

  constructor(context: DriverContext, hooks: BrowserDriverHooks) {
    this.#context = context;
    this.#hooks = hooks;
    this.#iceServers = context.joined.iceServers.map((s) => ({ ...s }));
    this.subscriber = this.#create('subscriber');
    this.subscriber.ontrack = () => hooks.track();
  }

  get publisher(): RTCPeerConnection | null {
    return this.#publisher;
  }

  async applySubscriberOffer(sdp: string, _tracks: readonly SubscribedTrack[]): Promise<void> {
    await this.subscriber.setRemoteDescription({ type: 'offer', sdp });
  }

  async answerSubscriber(): Promise<string> {
    const answer = await this.subscriber.createAnswer();
    await this.subscriber.setLocalDescription(answer);
    const sdp = this.subscriber.localDescription?.sdp ?? answer.sdp;
    if (!sdp) throw new Error('the browser produced an empty answer');
    return sdp;
  }

  async addRemoteCandidate(target: PeerTarget, candidate: IceCandidate | null): Promise<void> {
    if (candidate === null) return; // end of candidates: nothing to do
    const pc = target === 'publisher' ? this.#publisher : this.subscriber;
    await pc?.addIceCandidate(toCandidateInit(candidate));
  }

  /**
   * Sends `stream` on a new publisher: offer, `exchange`, answer. Resolves with the server's
   * track id per kind; null when the PeerConnections closed meanwhile.
   */
  async publish(
    stream: MediaStream,
    exchange: PublishExchange,
  ): Promise<{ audio: string | null; video: string | null } | null> {
    const pc = this.#create('publisher');
    this.#publisher = pc;
    const sent: { transceiver: RTCRtpTransceiver; kind: 'audio' | 'video' }[] = [];
    for (const track of [...stream.getAudioTracks(), ...stream.getVideoTracks()]) {
      const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      sent.push({ transceiver, kind: track.kind === 'audio' ? 'audio' : 'video' });
    }
    await pc.setLocalDescription(await pc.createOffer());
    const sdp = pc.localDescription?.sdp;
    if (!sdp || this.#closed) return null;
    const tracks = sent.map(({ transceiver, kind }) => ({
      mid: transceiver.mid ?? '',
      kind,
      source: kind === 'audio' ? ('microphone' as const) : ('camera' as const),
    }));
    const answer = await exchange(sdp, tracks);
    if (this.#closed) return null;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const ids = { audio: null as string | null, video: null as string | null };
    for (const { mid, trackId } of answer.tracks) {
      const kind = tracks.find((t) => t.mid === mid)?.kind;
      if (kind) ids[kind] = trackId;
    }
    return ids;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#publisher?.close();
    this.subscriber.close();
  }

  #create(target: PeerTarget): RTCPeerConnection {
    const pc = new RTCPeerConnection({ iceServers: this.#iceServers, bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (event) => {
      const candidate = event.candidate?.toJSON();
      // An empty candidate string marks the end of candidates: the server needs none.
      if (!candidate?.candidate) return;
      this.#context.localCandidate(target, {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? null,
        sdpMLineIndex: candidate.sdpMLineIndex ?? null,
        usernameFragment: candidate.usernameFragment ?? null,
      });
    };
    pc.onconnectionstatechange = () => this.#hooks.connectionState(target, pc.connectionState);
    return pc;
  }
}
