/**
 * The demo page's PeerDriver: the browser's RTCPeerConnections. The subscriber exists from the
 * join on; the publisher when the page publishes its camera and microphone.
 */
import type { IceCandidate, PeerTarget, SubscribedTrack } from '@geosfu/common/protocol';
import type { PublishTracks } from '../core/ClientSession.js';
import type { DriverContext, PeerDriver } from '../core/PeerDriver.js';
import { answerTakesSimulcast, declineSimulcast } from './answerSimulcast.js';
import { planSimulcast, type SimulcastPlan } from './simulcastPlan.js';

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

/** What a publish gave: the server's track id per kind, and the camera's simulcast sender. */
export interface Published {
  audio: string | null;
  video: string | null;
  /** The camera's sender and its layers, when it is sent as simulcast. */
  simulcast: { sender: RTCRtpSender; plan: SimulcastPlan } | null;
  /** Server track ids the node created for m-lines given up meanwhile: unpublish them. */
  stale: string[];
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
   * Sends `stream` on a new publisher: offer, `exchange`, answer. A camera large enough goes
   * out as simulcast (`planSimulcast`), its layers declared in the publish request. Resolves
   * with the server's track id per kind; null when the PeerConnections closed meanwhile.
   */
  async publish(stream: MediaStream, exchange: PublishExchange): Promise<Published | null> {
    const pc = this.#create('publisher');
    this.#publisher = pc;
    const sent: {
      transceiver: RTCRtpTransceiver;
      kind: 'audio' | 'video';
      plan: SimulcastPlan | null;
    }[] = [];
    for (const track of [...stream.getAudioTracks(), ...stream.getVideoTracks()]) {
      const kind = track.kind === 'audio' ? 'audio' : 'video';
      const { width, height } = track.getSettings();
      const plan = kind === 'video' ? planSimulcast(width, height) : null;
      const transceiver = pc.addTransceiver(track, {
        direction: 'sendonly',
        streams: [stream],
        ...(plan ? { sendEncodings: plan.encodings } : {}),
      });
      sent.push({ transceiver, kind, plan });
    }
    await pc.setLocalDescription(await pc.createOffer());
    const sdp = pc.localDescription?.sdp;
    if (!sdp || this.#closed) return null;
    const tracks = sent.map(({ transceiver, kind, plan }) => ({
      mid: transceiver.mid ?? '',
      kind,
      source: kind === 'audio' ? ('microphone' as const) : ('camera' as const),
      ...(plan ? { layers: plan.layers } : {}),
    }));
    const answer = await exchange(sdp, tracks);
    if (this.#closed) return null;
    const camera = sent.find((s) => s.plan !== null);
    const cameraMid = camera?.transceiver.mid ?? null;
    const declined =
      camera !== undefined && cameraMid !== null && !answerTakesSimulcast(answer.sdp, cameraMid);
    // A node that does not receive simulcast (see answerSimulcast.ts): take its answer as
    // declining it, so that the browser accepts it.
    const answerSdp = declined ? declineSimulcast(answer.sdp, cameraMid ?? '') : answer.sdp;
    await pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    const published: Published = { audio: null, video: null, simulcast: null, stale: [] };
    for (const { mid, trackId } of answer.tracks) {
      const kind = tracks.find((t) => t.mid === mid)?.kind;
      if (kind) published[kind] = trackId;
    }
    if (camera && declined) {
      // Such a node took the m-line as simulcast and waits for RTP streams by rid: a single
      // stream without one would go nowhere, and the browser keeps offering the rids on that
      // m-line. So the camera moves to a new single-layer m-line, and the first one's track
      // is given up (the caller unpublishes `stale`).
      const track = camera.transceiver.sender.track;
      camera.transceiver.stop();
      if (published.video) published.stale.push(published.video);
      published.video = null;
      if (!track) return published;
      const single = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      await pc.setLocalDescription(await pc.createOffer());
      const again = pc.localDescription?.sdp;
      if (!again || this.#closed) return null;
      const live = tracks.filter((t) => t.mid !== cameraMid);
      const video = { mid: single.mid ?? '', kind: 'video' as const, source: 'camera' as const };
      const second = await exchange(again, [...live, video]);
      if (this.#closed) return null;
      await pc.setRemoteDescription({ type: 'answer', sdp: second.sdp });
      published.video = second.tracks.find((t) => t.mid === video.mid)?.trackId ?? null;
      return published;
    }
    if (camera?.plan)
      published.simulcast = { sender: camera.transceiver.sender, plan: camera.plan };
    return published;
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
