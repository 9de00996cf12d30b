import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isH264Keyframe, keyframeDetector } from './keyframe.js';
import { isVp8Keyframe } from './vp8.js';

test('VP8 keyframe detection follows RFC 7741', () => {
  assert.equal(isVp8Keyframe(Buffer.from([0x10, 0x00, 0x00])), true, 'S=1, PID=0, P=0');
  assert.equal(isVp8Keyframe(Buffer.from([0x10, 0x01, 0x00])), false, 'P=1: interframe');
  assert.equal(isVp8Keyframe(Buffer.from([0x00, 0x00, 0x00])), false, 'not a partition start');
  // X=1 with a 15-bit PictureID: descriptor of 4 bytes, then the payload header.
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0x80, 0x80, 0x01, 0x00])), true);
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0x80, 0x80, 0x01, 0x01])), false);
  // X with a 7-bit PictureID, TL0PICIDX and TID: 5 bytes, then the payload header.
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0xe0, 0x05, 0x00, 0x00, 0x10])), true);
  assert.equal(isVp8Keyframe(Buffer.from([0x90, 0xe0, 0x05, 0x00, 0x00, 0x11])), false);
  assert.equal(isVp8Keyframe(Buffer.from([0x11, 0x10])), false, 'S=1 but partition 1');
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

test('keyframeDetector: one detector per codec, by MIME type in any case', () => {
  const vp8Key = Buffer.from([0x10, 0x00, 0x00]);
  const h264Idr = Buffer.from([0x65, 0x00]);
  assert.equal(keyframeDetector('video/VP8')(vp8Key), true);
  assert.equal(keyframeDetector('video/vp8')(h264Idr), false);
  assert.equal(keyframeDetector('video/H264')(h264Idr), true);
  assert.equal(keyframeDetector('audio/opus')(vp8Key), false, 'audio has no keyframes');
  assert.equal(keyframeDetector('video/AV1')(vp8Key), false, 'a codec we do not parse');
});
