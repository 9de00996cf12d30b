import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RtpHeader, RtpPacket } from 'werift';
import { forwardablePacket } from './rtp.js';

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
