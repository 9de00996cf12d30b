import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RtpHeader, RtpPacket } from 'werift';
import {
  forwardablePacket,
  iceOptions,
  isH264Keyframe,
  isVp8Keyframe,
  rembPacket,
} from './media.js';

test("forwarded packets lose the publisher's header extensions and keep everything else", () => {
  const header = new RtpHeader({
    payloadType: 96,
    sequenceNumber: 65535,
    timestamp: 0xfffffff0,
    marker: true,
    ssrc: 1234,
    extension: true,
    extensions: [
      { id: 4, payload: Buffer.from([0, 1]) }, // e.g. the publisher's transport-cc
      { id: 1, payload: Buffer.from('0') },
    ],
  });
  const payload = Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a]);
  const original = new RtpPacket(header, payload);
  const out = RtpPacket.deSerialize(forwardablePacket(original));
  assert.deepEqual(out.header.extensions, []);
  assert.equal(out.header.extension, false);
  assert.equal(out.header.sequenceNumber, 65535);
  assert.equal(out.header.timestamp, 0xfffffff0);
  assert.equal(out.header.marker, true);
  assert.equal(out.header.payloadType, 96);
  assert.deepEqual(out.payload, payload);
  assert.equal(original.header.extensions.length, 2, 'the original packet is not modified');
});

test('VP8 keyframe detection follows RFC 7741', () => {
  assert.equal(isVp8Keyframe(Buffer.from([0x10, 0x00, 0x00])), true, 'S=1, PID=0, P=0');
  assert.equal(isVp8Keyframe(Buffer.from([0x10, 0x01, 0x00])), false, 'P=1: interframe');
  assert.equal(isVp8Keyframe(Buffer.from([0x00, 0x00, 0x00])), false, 'not a partition start');
  // X=1 with a 15-bit PictureID: descriptor of 4 bytes, then the payload header.
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0x80, 0x80, 0x01, 0x00])), true);
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0x80, 0x80, 0x01, 0x01])), false);
});

test('H264 keyframe detection: IDR, SPS in STAP-A, FU-A start', () => {
  assert.equal(isH264Keyframe(Buffer.from([0x65, 0x00])), true);
  assert.equal(isH264Keyframe(Buffer.from([0x41, 0x00])), false);
  assert.equal(
    isH264Keyframe(Buffer.from([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce])),
    true,
  );
  assert.equal(isH264Keyframe(Buffer.from([0x7c, 0x85, 0x00])), true, 'FU-A start of an IDR');
  assert.equal(isH264Keyframe(Buffer.from([0x7c, 0x05, 0x00])), false, 'FU-A continuation');
});

test('REMB encodes the bitrate as mantissa and exponent', () => {
  const packet = rembPacket(1, [2, 3], 3_000_000);
  const feedback = packet.feedback as unknown as {
    brMantissa: number;
    brExp: number;
    ssrcFeedbacks: number[];
  };
  assert.ok(feedback.brMantissa < 1 << 18);
  const bitrate = feedback.brMantissa * 2 ** feedback.brExp;
  assert.ok(Math.abs(bitrate - 3_000_000) / 3_000_000 < 0.001);
  assert.deepEqual(feedback.ssrcFeedbacks, [2, 3]);
});

test('ICE: ICE-lite, no STUN wait, and sockets bound to the single host address given', () => {
  const o = iceOptions({
    rtcPortRange: [40000, 40100],
    rtcHostAddresses: ['127.0.0.1'],
    announcedIps: ['203.0.113.5'],
  });
  assert.equal(o.iceLite, true);
  assert.equal(o.iceStunGatherTimeout, 0);
  assert.deepEqual(o.icePortRange, [40000, 40100]);
  assert.deepEqual(o.iceAdditionalHostAddresses, ['127.0.0.1', '203.0.113.5']);
  assert.deepEqual(o.iceInterfaceAddresses, { udp4: '127.0.0.1' });
  assert.equal(o.iceUseIpv4, false);
  const all = iceOptions({
    rtcPortRange: undefined,
    rtcHostAddresses: undefined,
    announcedIps: [],
  });
  assert.equal(all.iceUseIpv4, undefined, 'default: every interface');
});
