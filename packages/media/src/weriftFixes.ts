import type { RTCRtpReceiver, RtpPacket } from 'werift';

/** The part of werift's (unexported) NackHandler that the fix below drives. */
interface NackInternals {
  mediaSourceSsrc?: number;
  addPacket(packet: RtpPacket): void;
  getLost(seq: number): number | undefined;
  setLost(seq: number, count: number): void;
  removeLost(seq: number): void;
  pruneLost(): void;
}

/** A jump larger than this is a new stream (a publisher restart), not a burst of loss. */
const MAX_GAP = 300;

/**
 * werift 0.25's NACK generator compares raw 16-bit sequence numbers: when the packets right
 * at the 65535 -> 0 wrap are lost, it stops detecting any loss until the numbers come round
 * again (about 7 minutes of video), and no NACK goes out meanwhile. Browsers start at a random
 * sequence number, so every publisher meets the wrap. This replaces the handler's packet
 * accounting with serial-number arithmetic (RFC 1982) and keeps werift's NACK sending, retries
 * and pruning. Returns false, changing nothing, if werift's internals are not what we expect
 * (a newer werift may have fixed it: the unit test then tells).
 */
export function fixNackWraparound(receiver: RTCRtpReceiver): boolean {
  const nack = (receiver as unknown as { nack?: Partial<NackInternals> }).nack;
  if (
    !nack ||
    typeof nack.addPacket !== 'function' ||
    typeof nack.getLost !== 'function' ||
    typeof nack.setLost !== 'function' ||
    typeof nack.removeLost !== 'function' ||
    typeof nack.pruneLost !== 'function'
  ) {
    return false;
  }
  const handler = nack as NackInternals;
  let highest: number | undefined;
  handler.addPacket = (packet: RtpPacket) => {
    const seq = packet.header.sequenceNumber;
    handler.mediaSourceSsrc = packet.header.ssrc;
    if (highest === undefined) {
      highest = seq;
      return;
    }
    if (handler.getLost(seq)) {
      handler.removeLost(seq); // a retransmission filled the gap
      return;
    }
    const ahead = (seq - highest + 0x10000) & 0xffff;
    if (ahead === 0 || ahead >= 0x8000) return; // a duplicate, or older than the newest
    if (ahead > 1 && ahead <= MAX_GAP) {
      for (let i = 1; i < ahead; i++) handler.setLost((highest + i) & 0xffff, 1);
      handler.pruneLost();
    }
    highest = seq;
  };
  return true;
}

/**
 * Makes the answering side (an ICE-lite node) the DTLS server: `a=setup:passive` instead of
 * werift's `active`. As DTLS client, an ICE-lite werift agent sent its ClientHello as soon as
 * a check with USE-CANDIDATE arrived, often before the full agent on the other side had its
 * own ICE result and a DTLS endpoint; the hello was dropped and the handshake waited for the
 * first retransmission, a full second (seen as late first keyframes and, with short peer
 * timeouts, as PeerConnections that "never connected"). As DTLS server the node waits for
 * the client's hello, which the client sends once its ICE is connected. RFC 5763 section 5
 * lets the answerer choose passive; browsers and werift accept it.
 */
export function preferPassiveDtls(answerSdp: string): string {
  return answerSdp.replace(/^a=setup:active\r?$/gm, (line) => line.replace('active', 'passive'));
}

/** The part of werift's RTCRtpReceiver that decides whether it runs its own TWCC generator. */
interface TwccInternals {
  twccEnabled?: unknown;
  receiverTWCC?: { twccRunning?: boolean } | undefined;
  setupTWCC?: unknown;
}

/**
 * Stops werift's own transport-wide CC generator (ReceiverTWCC) on a receiver whose
 * transport-cc feedback `TwccFeedback` sends instead. werift creates one generator per
 * receiver once transport-cc is negotiated on its codec; its packets are malformed (see
 * docs/ARCHITECTURE.md, "Congestion feedback toward publishers") and made Chrome's send
 * estimate collapse (pitfall 3). Making `twccEnabled` false keeps werift from creating it on
 * the first packet and on renegotiation. Returns false, changing nothing, if werift's
 * internals are not what we expect.
 */
export function silenceWeriftTwcc(receiver: RTCRtpReceiver): boolean {
  const internals = receiver as unknown as TwccInternals;
  if (!('twccEnabled' in internals) || typeof internals.setupTWCC !== 'function') return false;
  Object.defineProperty(internals, 'twccEnabled', { configurable: true, get: () => false });
  internals.receiverTWCC = undefined;
  return true;
}
