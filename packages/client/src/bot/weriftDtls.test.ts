import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createSelfSignedCertificate, DtlsClient, DtlsServer } from 'werift';

type SignatureHash = Parameters<typeof createSelfSignedCertificate>[0];

import { fixWeriftDtlsClient, flight4Complete } from './weriftDtls.js';

fixWeriftDtlsClient();

const hs = (msg_type: number, message_seq: number) => ({ msg_type, message_seq });

describe('werift DTLS client fix', () => {
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

  test('a handshake whose CertificateRequest datagram is lost completes after the retransmission', async () => {
    const { certPem, keyPem, signatureHash } = await selfSigned();
    // Two in-memory transports; the server's first datagram carrying a CertificateRequest
    // (handshake type 13 in a handshake record) is dropped, as a lossy path would.
    let dropped = 0;
    const toClient: ((b: Buffer) => void)[] = [];
    const toServer: ((b: Buffer) => void)[] = [];
    const transport = (deliver: ((b: Buffer) => void)[], isServer: boolean) => ({
      type: 'memory',
      address: { address: '127.0.0.1', port: 0, family: 'IPv4' },
      closed: false,
      onData: (_d: Buffer) => {},
      send: async (data: Buffer) => {
        if (isServer && dropped === 0 && carriesHandshake(data, 13)) {
          dropped++;
          return;
        }
        setImmediate(() => {
          for (const d of deliver) d(data);
        });
      },
      close: async () => {},
    });
    const serverTransport = transport(toClient, true);
    const clientTransport = transport(toServer, false);
    const server = new DtlsServer({
      transport: serverTransport as never,
      cert: certPem,
      key: keyPem,
      signatureHash,
      certificateRequest: true,
      extendedMasterSecret: true,
    });
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
    const outcome = await Promise.race([
      connected.then(() => 'connected'),
      new Promise<string>((r) => setTimeout(() => r('stalled'), 8_000)),
    ]);
    assert.equal(dropped, 1, 'the CertificateRequest datagram was dropped once');
    assert.equal(outcome, 'connected');
    // Both ends derived the same keys: application data goes through.
    const got = new Promise<Buffer>((r) => server.onData.once((d: Buffer) => r(d)));
    await client.send(Buffer.from('hello'));
    assert.equal((await got).toString(), 'hello');
  });
});

/** A DTLS datagram whose records include a handshake message of `type` (epoch 0 only). */
function carriesHandshake(data: Buffer, type: number): boolean {
  for (let at = 0; at + 13 <= data.length; ) {
    const length = data.readUInt16BE(at + 11);
    if (data[at] === 22 && data[at + 13] === type) return true;
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
