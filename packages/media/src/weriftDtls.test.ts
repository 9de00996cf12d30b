import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createSelfSignedCertificate, DtlsClient, DtlsServer } from 'werift';

type SignatureHash = Parameters<typeof createSelfSignedCertificate>[0];

import {
  fixWeriftDtls,
  fixWeriftDtlsServer,
  flight4Complete,
  withoutLateHelloVerify,
} from './weriftDtls.js';

fixWeriftDtls();

const hs = (msg_type: number, message_seq: number) => ({ msg_type, message_seq });

describe('werift DTLS fixes', () => {
  test('flight 4 is complete only without gaps from the ServerHello to the ServerHelloDone', () => {
    const done = hs(14, 5);
    const full = [hs(2, 1), hs(11, 2), hs(12, 3), hs(13, 4)];
    assert.equal(flight4Complete(full, [done], done), true);
    // The CertificateRequest (seq 4) was lost.
    assert.equal(flight4Complete([hs(2, 1), hs(11, 2), hs(12, 3)], [done], done), false);
    // No ServerHello yet.
    assert.equal(flight4Complete([hs(11, 2), hs(12, 3), hs(13, 4)], [done], done), false);
    // Without a CertificateRequest the done message follows the key exchange directly.
    assert.equal(flight4Complete([hs(2, 1), hs(11, 2), hs(12, 3)], [hs(14, 4)], hs(14, 4)), true);
  });

  test('a HelloVerifyRequest is dropped once flight 3 is out', () => {
    const hvr = hs(3, 0);
    assert.deepEqual(withoutLateHelloVerify(1, [hvr]), [hvr]);
    assert.deepEqual(withoutLateHelloVerify(3, [hvr]), []);
    assert.deepEqual(withoutLateHelloVerify(5, [hvr, hs(2, 1)]), [hs(2, 1)]);
  });

  test('a handshake that gets its HelloVerifyRequest twice completes', async () => {
    // The server's answer is slow (a starved process), so the client retransmits its
    // ClientHello and the server answers that too: the second HelloVerifyRequest reaches the
    // client after its flight 3, which made werift throw and the PeerConnection fail.
    // The ServerHello is slow too, so that the late one arrives while the client waits in flight 3.
    const slow = { from: 'server', delayMs: 700 } as const;
    assert.equal(
      await handshake({ ...slow, type: 3 }, { ...slow, type: 2, delayMs: 1_000 }),
      'connected',
    );
  });

  test('a handshake whose CertificateRequest datagram is lost completes after the retransmission', async () => {
    // The server's flight 4 loses its CertificateRequest (handshake type 13) once.
    assert.equal(await handshake({ from: 'server', type: 13 }), 'connected');
  });

  test('a handshake whose ClientKeyExchange datagram is lost completes after the retransmission', async () => {
    // The client's flight 5 loses its ClientKeyExchange (type 16) once; its Certificate and
    // CertificateVerify arrive and are cached before the retransmission.
    assert.equal(await handshake({ from: 'client', type: 16 }), 'connected');
  });
});

/**
 * A DTLS handshake between a werift client and server over in-memory transports, dropping
 * the first datagram that `drop.from` sends with a handshake message of `drop.type`. Resolves
 * 'connected' once both ends are connected and application data goes through, 'stalled'
 * after 8 s.
 */
interface Hit {
  from: 'client' | 'server';
  type: number;
  /** Deliver it this late instead of dropping it. */
  delayMs?: number;
}

async function handshake(drop: Hit, ...more: Hit[]): Promise<string> {
  const { certPem, keyPem, signatureHash } = await selfSigned();
  let dropped = 0;
  const pending = [drop, ...more];
  const toClient: ((b: Buffer) => void)[] = [];
  const toServer: ((b: Buffer) => void)[] = [];
  const transport = (deliver: ((b: Buffer) => void)[], side: 'client' | 'server') => ({
    type: 'memory',
    address: { address: '127.0.0.1', port: 0, family: 'IPv4' },
    closed: false,
    onData: (_d: Buffer) => {},
    send: async (data: Buffer) => {
      // Each rule hits the first datagram from its side that carries its message type.
      const i = pending.findIndex((h) => h.from === side && carriesHandshake(data, h.type));
      const hit = i === -1 ? undefined : pending.splice(i, 1)[0];
      if (hit === drop) dropped++;
      if (hit && hit.delayMs === undefined) return;
      setTimeout(() => {
        for (const d of deliver) d(data);
      }, hit?.delayMs ?? 0);
    },
    close: async () => {},
  });
  const serverTransport = transport(toClient, 'server');
  const clientTransport = transport(toServer, 'client');
  const server = new DtlsServer({
    transport: serverTransport as never,
    cert: certPem,
    key: keyPem,
    signatureHash,
    certificateRequest: true,
    extendedMasterSecret: true,
  });
  fixWeriftDtlsServer(server);
  const client = new DtlsClient({
    transport: clientTransport as never,
    cert: certPem,
    key: keyPem,
    signatureHash,
    extendedMasterSecret: true,
  });
  toServer.push((b) => serverTransport.onData(b));
  toClient.push((b) => clientTransport.onData(b));
  const connected = Promise.all([
    new Promise<void>((r) => server.onConnect.once(() => r())),
    new Promise<void>((r) => client.onConnect.once(() => r())),
  ]);
  await client.connect();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    connected.then(() => 'connected'),
    // werift reports a handshake it gave up on here (RTCDtlsTransport then fails the PC).
    new Promise<string>((r) => client.onError.once(() => r('client error'))),
    new Promise<string>((r) => server.onError.once(() => r('server error'))),
    new Promise<string>((r) => {
      timer = setTimeout(() => r('stalled'), 8_000);
    }),
  ]);
  clearTimeout(timer);
  assert.equal(dropped, 1, `a datagram with handshake type ${drop.type} was hit once`);
  if (outcome !== 'connected') return outcome;
  // Both ends derived the same keys: application data goes through.
  const got = new Promise<Buffer>((r) => server.onData.once((d: Buffer) => r(d)));
  await client.send(Buffer.from('hello'));
  assert.equal((await got).toString(), 'hello');
  return outcome;
}

/** A DTLS datagram whose records include a plaintext (epoch 0) handshake message of `type`. */
function carriesHandshake(data: Buffer, type: number): boolean {
  for (let at = 0; at + 13 <= data.length; ) {
    const length = data.readUInt16BE(at + 11);
    const epoch = data.readUInt16BE(at + 3);
    if (data[at] === 22 && epoch === 0 && data[at + 13] === type) return true;
    at += 13 + length;
  }
  return false;
}

async function selfSigned(): Promise<{
  certPem: string;
  keyPem: string;
  signatureHash: SignatureHash;
}> {
  // ECDSA P-256 with SHA-256, as werift's own PeerConnections use.
  return createSelfSignedCertificate({ hash: 4, signature: 3 }, 23);
}
