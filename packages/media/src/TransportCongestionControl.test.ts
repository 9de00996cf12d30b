import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@geosfu/common';
import {
  GenericNack,
  RTCPeerConnection,
  RTP_EXTENSION_URI,
  RtcpTransportLayerFeedback,
  RtpHeader,
  RtpPacket,
} from 'werift';
import { subscriberPeerConfig } from './peerConfig.js';
import { TransportCongestionControl } from './TransportCongestionControl.js';

const LOOPBACK = { rtcPortRange: undefined, rtcHostAddresses: ['127.0.0.1'], announcedIps: [] };

const opened: RTCPeerConnection[] = [];
const controls: TransportCongestionControl[] = [];
after(async () => {
  for (const c of controls) c.close();
  await Promise.allSettled(opened.map((pc) => pc.close()));
});

async function waitUntil(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

function vp8Packet(sequenceNumber: number, marker: boolean): RtpPacket {
  const header = new RtpHeader({
    payloadType: 96,
    sequenceNumber,
    timestamp: 3000 * sequenceNumber,
    ssrc: 1,
    marker,
  });
  const payload = Buffer.alloc(300);
  payload[0] = 0x10;
  return new RtpPacket(header, payload);
}

interface Arrival {
  seq: number;
  transportSeq: number | undefined;
  padding: boolean;
}

/**
 * The node's subscriber configuration toward a werift receiver that negotiates transport-cc
 * too (werift's receiver sends transport-cc feedback), over loopback.
 */
async function connectedPair() {
  const config = subscriberPeerConfig(LOOPBACK);
  const sending = new RTCPeerConnection({ ...config, iceLite: false });
  const receiving = new RTCPeerConnection(config);
  opened.push(sending, receiving);
  const transceiver = sending.addTransceiver('video', { direction: 'sendonly' });
  await sending.setLocalDescription(await sending.createOffer());
  await receiving.setRemoteDescription({ type: 'offer', sdp: sending.localDescription?.sdp ?? '' });
  await receiving.setLocalDescription(await receiving.createAnswer());
  await sending.setRemoteDescription({
    type: 'answer',
    sdp: receiving.localDescription?.sdp ?? '',
  });
  const sender = transceiver.sender;
  const control = new TransportCongestionControl({
    transport: sender.dtlsTransport,
    logger: silentLogger(),
  });
  controls.push(control);
  assert.equal(control.addSender(sender), true, 'werift internals as expected');
  await waitUntil('DTLS connected', () => sender.dtlsTransport.state === 'connected');
  const receiverTransport = receiving.getTransceivers()[0]?.receiver.dtlsTransport;
  assert.ok(receiverTransport);
  // The negotiated extensions are private in werift's types.
  const negotiated = (sender as unknown as { headerExtensions: { id: number; uri: string }[] })
    .headerExtensions;
  const id = negotiated.find((e) => e.uri === RTP_EXTENSION_URI.transportWideCC)?.id;
  assert.ok(id !== undefined, 'transport-cc negotiated');
  const arrivals: Arrival[] = [];
  receiverTransport.onRtp.subscribe((rtp) => {
    const ext = rtp.header.extensions.find((e) => e.id === id);
    arrivals.push({
      seq: rtp.header.sequenceNumber,
      transportSeq: ext?.payload.readUInt16BE(0),
      padding: rtp.header.padding,
    });
  });
  return { sender, receiving, receiverTransport, control, arrivals };
}

test('every packet gets the next transport-wide number, a retransmission a new one', async () => {
  const { sender, receiverTransport, control, arrivals } = await connectedPair();
  for (let i = 1; i <= 10; i++) await sender.sendRtp(vp8Packet(100 + i, i % 3 === 0));
  await waitUntil('10 packets at the receiver', () => arrivals.length >= 10);
  assert.deepEqual(
    arrivals.map((a) => a.transportSeq),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  const lost = arrivals[4];
  assert.ok(lost);
  // The receiver asks for the fifth packet again: it leaves with transport number 11, not 5.
  await receiverTransport.sendRtcp([
    new RtcpTransportLayerFeedback({
      feedback: new GenericNack({
        senderSsrc: 1234,
        mediaSourceSsrc: sender.ssrc,
        lost: [lost.seq],
      }),
    }),
  ]);
  await waitUntil('the retransmission', () => arrivals.length >= 11);
  assert.deepEqual(arrivals[10], { seq: lost.seq, transportSeq: 11, padding: false });
  assert.equal(control.sequenceNumber, 11);
});

test('a probe is padding after the end of a frame; later media moves up by as many numbers', async () => {
  const { sender, control, arrivals } = await connectedPair();
  await sender.sendRtp(vp8Packet(500, true));
  await waitUntil('the first packet', () => arrivals.length >= 1);
  const first = arrivals[0];
  assert.ok(first);
  control.probe(2_000_000);
  await waitUntil('the probe cluster', () => arrivals.some((a) => a.padding));
  await sleep(600); // the cluster is 150 ms long: let it end
  const padding = arrivals.filter((a) => a.padding);
  assert.ok(padding.length >= 10, `${padding.length} probe packets`);
  assert.deepEqual(
    padding.map((a) => a.seq),
    padding.map((_, i) => (first.seq + 1 + i) & 0xffff),
    'padding takes the next RTP sequence numbers',
  );
  await sender.sendRtp(vp8Packet(501, true));
  await waitUntil('the next media packet', () => arrivals.length >= padding.length + 2);
  const next = arrivals[arrivals.length - 1];
  assert.equal(next?.seq, (first.seq + padding.length + 1) & 0xffff, 'continuous with the padding');
  const transportSeqs = arrivals.map((a) => a.transportSeq);
  assert.deepEqual(
    transportSeqs,
    transportSeqs.map((_, i) => i + 1),
    'every packet numbered once, in order',
  );
  control.probe(2_000_000);
  await sleep(100);
  assert.equal(arrivals.length, padding.length + 2, 'at most one probe per 1.5 s');
});
