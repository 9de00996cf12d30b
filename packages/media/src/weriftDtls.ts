/**
 * Three werift DTLS fixes; the first two showed up as PeerConnections that never connect on lossy paths
 * in the WAN lab.
 *
 * The client: werift's client answers the server's flight 4 (ServerHello,
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
 * The server: on ClientKeyExchange it derives the extended master secret (RFC 7627) from the
 * hash of every handshake message it has cached, instead of those up to and including the
 * ClientKeyExchange. When the ClientKeyExchange datagram was lost and the CertificateVerify
 * arrived, the retransmitted ClientKeyExchange is hashed together with that CertificateVerify;
 * the secret is wrong for good and the client's Finished never decrypts. The fix hides the
 * cached messages that come after the ClientKeyExchange while its handler runs.
 *
 * The client, again: a second HelloVerifyRequest makes werift's flight 3 throw ("if
 * (this.dtls.flight === 3) throw new Error()") and the handshake fails for good. A server
 * sends one per ClientHello, so a client that retransmitted its ClientHello because the
 * answer was slow (a starved process: forty joins at once on two cores) gets two. The fix
 * drops a HelloVerifyRequest once flight 3 is out: that flight is retransmitted on its own
 * timer until the server answers it.
 *
 * Process-wide (prototype patches), idempotent: bots and `sfu-node` (DTLS server towards
 * clients and relay senders, DTLS client on its own relay links) apply them at start.
 */
import { DtlsClient, DtlsServer, RTCDtlsTransport } from 'werift';

const SERVER_HELLO = 2;
const HELLO_VERIFY_REQUEST = 3;
const SERVER_HELLO_DONE = 14;
const CLIENT_KEY_EXCHANGE = 16;
/** ...and the server caches the client's flight 5 under 5. */
const FLIGHT_5 = 5;
/** werift caches the handshake messages of flight 4 (as the client receives them) under 4. */
const FLIGHT_4 = 4;

interface Handshake {
  msg_type: number;
  message_seq: number;
}

interface DtlsSocketInternals {
  onHandleHandshakes: (assembled: Handshake[]) => Promise<void>;
  dtls: { flight: number; handshakeCache: Record<number, { data: Handshake[] } | undefined> };
}

interface DtlsClientInternals extends DtlsSocketInternals {
  connect(): Promise<void>;
}

interface DtlsTransportInternals {
  dtls?: unknown;
  start(): Promise<void>;
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

/**
 * Runs `handle` on a record with a ClientKeyExchange while the server's flight 5 cache holds
 * only the messages up to it (by message sequence number), so that the session hash of the
 * extended master secret covers exactly those; the later ones are put back afterwards.
 */
export function withFlight5UpTo<T>(
  cache: { data: Handshake[] } | undefined,
  keyExchange: Handshake,
  handle: () => T,
): T {
  if (!cache) return handle();
  const later = cache.data.filter((h) => h.message_seq > keyExchange.message_seq);
  cache.data = cache.data.filter((h) => h.message_seq <= keyExchange.message_seq);
  try {
    // The handler computes the secret synchronously, before its first await.
    return handle();
  } finally {
    const kept = cache.data;
    cache.data = [...kept, ...later.filter((h) => !kept.some((k) => k.msg_type === h.msg_type))];
  }
}

/**
 * The messages of a record the client may act on: without a HelloVerifyRequest once the
 * client is past flight 2 (`flight` is the last flight it sent or is sending).
 */
export function withoutLateHelloVerify<T extends Handshake>(flight: number, assembled: T[]): T[] {
  return flight >= 3 ? assembled.filter((h) => h.msg_type !== HELLO_VERIFY_REQUEST) : assembled;
}

/** The server fix on one DtlsServer (RTCDtlsTransport's are patched by fixWeriftDtls). */
export function fixWeriftDtlsServer(dtlsServer: DtlsServer): void {
  const server = dtlsServer as unknown as DtlsSocketInternals;
  const handle = server.onHandleHandshakes;
  server.onHandleHandshakes = (assembled) => {
    const keyExchange = assembled.find((h) => h.msg_type === CLIENT_KEY_EXCHANGE);
    if (!keyExchange) return handle(assembled);
    return withFlight5UpTo(server.dtls.handshakeCache[FLIGHT_5], keyExchange, () =>
      handle(assembled),
    );
  };
}

/** Applies the fixes (see the top of this file). */
export function fixWeriftDtls(): void {
  if (applied) return;
  applied = true;
  const transport = RTCDtlsTransport.prototype as unknown as DtlsTransportInternals;
  const start = transport.start;
  transport.start = function (this: DtlsTransportInternals) {
    const started = start.call(this);
    // start() creates its DtlsServer synchronously; no datagram can arrive before this runs.
    if (this.dtls instanceof DtlsServer) fixWeriftDtlsServer(this.dtls);
    return started;
  };
  const proto = DtlsClient.prototype as unknown as DtlsClientInternals;
  const connect = proto.connect;
  proto.connect = function (this: DtlsClientInternals) {
    const handle = this.onHandleHandshakes;
    this.onHandleHandshakes = (all) => {
      const assembled = withoutLateHelloVerify(this.dtls.flight, all);
      if (assembled.length === 0) return Promise.resolve();
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
