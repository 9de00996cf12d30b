/**
 * A werift DTLS client fix. werift's client answers the server's flight 4 (ServerHello,
 * Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone: one record each) as
 * soon as ServerHelloDone arrives and it has the Certificate and ServerKeyExchange. When the
 * datagram with the CertificateRequest was lost, it sends flight 5 without a certificate,
 * caches that flight and resends the same one when the server retransmits flight 4: the
 * server, which asked for a certificate (WebRTC authenticates both ends by fingerprint),
 * derives a different master secret, cannot decrypt the client's Finished, and the
 * PeerConnection never connects. With 0.5 % loss on the path that is a few joins in a hundred
 * (found by the WAN lab). The fix: a ServerHelloDone that follows a gap in the flight's
 * message sequence numbers is held back until the server's retransmission fills the gap.
 *
 * Process-wide (a prototype patch), idempotent. The bot applies it on import; `sfu-node`
 * applies it at start, since its relay links are DTLS clients too.
 */
import { DtlsClient } from 'werift';

const SERVER_HELLO = 2;
const SERVER_HELLO_DONE = 14;
/** werift caches the handshake messages of flight 4 (as the client receives them) under 4. */
const FLIGHT_4 = 4;

interface Handshake {
  msg_type: number;
  message_seq: number;
}

interface DtlsClientInternals {
  onHandleHandshakes: (assembled: Handshake[]) => Promise<void>;
  dtls: { handshakeCache: Record<number, { data: Handshake[] } | undefined> };
  connect(): Promise<void>;
}

let applied = false;

/**
 * True when `done` (a ServerHelloDone) may be acted on: every message sequence number from
 * the ServerHello's up to it has arrived (`received` is flight 4 so far, `arriving` the
 * messages of the record being handled).
 */
export function flight4Complete(
  received: readonly Handshake[],
  arriving: readonly Handshake[],
  done: Handshake,
): boolean {
  const all = [...received, ...arriving];
  const hello = all.find((h) => h.msg_type === SERVER_HELLO);
  if (!hello) return false;
  const seen = new Set(all.map((h) => h.message_seq));
  for (let seq = hello.message_seq; seq < done.message_seq; seq++) {
    if (!seen.has(seq)) return false;
  }
  return true;
}

export function fixWeriftDtlsClient(): void {
  if (applied) return;
  applied = true;
  const proto = DtlsClient.prototype as unknown as DtlsClientInternals;
  const connect = proto.connect;
  proto.connect = function (this: DtlsClientInternals) {
    const handle = this.onHandleHandshakes;
    this.onHandleHandshakes = (assembled) => {
      const done = assembled.find((h) => h.msg_type === SERVER_HELLO_DONE);
      if (done) {
        const received = this.dtls.handshakeCache[FLIGHT_4]?.data ?? [];
        if (!flight4Complete(received, assembled, done)) {
          // Wait for the server's retransmission of flight 4 (after 0.5 s, then 1 s, ...).
          return handle(assembled.filter((h) => h !== done));
        }
      }
      return handle(assembled);
    };
    return connect.call(this);
  };
}
