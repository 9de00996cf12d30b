import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@geosfu/common';
import { RTCPeerConnection, RtpHeader, RtpPacket } from 'werift';
import { audioCodecs, videoCodecs } from './codecs.js';
import type { ForwardedPacket } from './ForwardedPacket.js';
import { OutgoingStream } from './OutgoingStream.js';
import { iceOptions } from './peerConfig.js';
import { RTP_HEADER_SIZE } from './rtp.js';
import { parseVp8 } from './vp8.js';

const LOOPBACK = { rtcPortRange: undefined, rtcHostAddresses: ['127.0.0.1'], announcedIps: [] };
const codecs = { video: videoCodecs(), audio: audioCodecs() };

const opened: RTCPeerConnection[] = [];
after(async () => {
  await Promise.allSettled(opened.map((pc) => pc.close()));
});

/** Polls `check` until it holds, failing after `timeoutMs` with what it waited for. */
async function waitUntil(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

function vp8Packet(sequenceNumber: number, payloadSize = 100): ForwardedPacket {
  const header = new RtpHeader({ payloadType: 96, sequenceNumber, timestamp: 3000, ssrc: 1 });
  const payload = Buffer.alloc(payloadSize);
  payload[0] = 0x10; // S bit, partition 0: a frame start
  const vp8 = parseVp8(payload);
  return {
    buffer: new RtpPacket(header, payload).serialize(),
    layer: 0,
    ssrc: 1,
    sequenceNumber,
    timestamp: 3000,
    marker: false,
    keyframe: vp8?.keyframe ?? false,
    vp8,
  };
}

test('counts and sends what leaves, drops what cannot, reports PLIs and closes once', async () => {
  // The relay link's topology: a full ICE agent sends to an ICE-lite one, both on loopback.
  const sending = new RTCPeerConnection({
    ...iceOptions(LOOPBACK),
    iceLite: false,
    bundlePolicy: 'max-bundle',
    codecs,
  });
  const receiving = new RTCPeerConnection({
    ...iceOptions(LOOPBACK),
    bundlePolicy: 'max-bundle',
    codecs,
  });
  opened.push(sending, receiving);
  const transceiver = sending.addTransceiver('video', { direction: 'sendonly' });

  const seen = { sent: 0, payloadBytes: 0, first: 0, plis: 0, closes: 0 };
  const stream = new OutgoingStream({
    sender: transceiver.sender,
    observer: {
      sent: (bytes) => {
        seen.sent++;
        seen.payloadBytes += bytes;
      },
      firstPacket: () => seen.first++,
      keyframeRequested: () => seen.plis++,
    },
    onClose: () => seen.closes++,
    logger: silentLogger(),
  });

  stream.send(vp8Packet(1));
  assert.equal(seen.sent, 0, 'no codec before the answer: nothing is counted');

  const received: number[] = [];
  receiving.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => received.push(rtp.header.sequenceNumber));
  });
  await sending.setLocalDescription(await sending.createOffer());
  await receiving.setRemoteDescription({ type: 'offer', sdp: sending.localDescription?.sdp ?? '' });
  await receiving.setLocalDescription(await receiving.createAnswer());
  await sending.setRemoteDescription({
    type: 'answer',
    sdp: receiving.localDescription?.sdp ?? '',
  });
  stream.send(vp8Packet(2));
  if (transceiver.sender.dtlsTransport.state !== 'connected') {
    assert.equal(seen.sent, 0, 'DTLS not up yet: nothing is counted');
  }
  await waitUntil('DTLS connected', () => transceiver.sender.dtlsTransport.state === 'connected');

  for (let seq = 10; seq < 20; seq++) stream.send(vp8Packet(seq));
  assert.equal(seen.sent, 10);
  assert.equal(seen.payloadBytes, 10 * 100);
  assert.equal(stream.packets, 10);
  assert.equal(stream.bytes, 10 * (RTP_HEADER_SIZE + 100));
  assert.equal(seen.first, 1, 'the first packet is reported once');
  await waitUntil('the 10 packets at the receiver', () => received.length >= 10);

  stream.paused = true;
  for (let seq = 20; seq < 25; seq++) stream.send(vp8Packet(seq));
  assert.equal(seen.sent, 10, 'paused: nothing counted');
  stream.paused = false;
  stream.send(vp8Packet(25));
  await waitUntil('the packet after the pause', () => received.includes(25));
  assert.deepEqual(
    received.filter((s) => s >= 20 && s < 25),
    [],
    'paused: nothing sent',
  );

  const receiver = receiving.getTransceivers()[0]?.receiver;
  assert.ok(receiver);
  await receiver.sendRtcpPLI(receiver.track?.ssrc ?? 1);
  await waitUntil('the PLI reported', () => seen.plis === 1);

  stream.close();
  stream.close();
  assert.equal(seen.closes, 1, 'onClose runs once');
  assert.equal(stream.closed, true);
  stream.send(vp8Packet(26));
  assert.equal(seen.sent, 11, 'closed: nothing counted');
});
