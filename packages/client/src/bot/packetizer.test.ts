import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isH264Keyframe, isVp8Keyframe, parseVp8 } from '@geosfu/media';
import type { RtpPacket } from 'werift';
import {
  buildAudioPayload,
  H264Packetizer,
  PROBE_SIZE,
  readProbe,
  splitSizes,
  Vp8Packetizer,
} from './packetizer.js';
import { SyntheticAudioSource, SyntheticVideoSource } from './source.js';

describe('splitSizes', () => {
  it('splits into chunks no larger than the maximum that add up to the size', () => {
    assert.deepEqual(splitSizes(2500, 1000), [1000, 1000, 500]);
    assert.deepEqual(splitSizes(2000, 1000), [1000, 1000]);
    assert.deepEqual(splitSizes(10, 1000), [10]);
    assert.deepEqual(splitSizes(0, 1000), [0]);
  });
});

describe('Vp8Packetizer', () => {
  const maxPayload = 1150;
  const chunk = maxPayload - 4 - PROBE_SIZE;

  it('splits a frame with S on the first packet only and a shared PictureID', () => {
    const p = new Vp8Packetizer({ maxPayload, initialPictureId: 0x1234 });
    const payloads = p.packetize(6250, false, 1234.5, 7);
    assert.equal(payloads.length, Math.ceil(6250 / chunk));
    let vp8Bytes = 0;
    payloads.forEach((payload, i) => {
      assert.ok(payload.length <= maxPayload, `packet ${i} is ${payload.length} bytes`);
      const d = parseVp8(payload);
      assert.ok(d);
      assert.equal(d.frameStart, i === 0, `S bit of packet ${i}`);
      assert.equal(d.pictureId, 0x1234);
      assert.equal(d.size, 4);
      vp8Bytes += payload.length - d.size - PROBE_SIZE;
      assert.deepEqual(readProbe(payload), { sendTimeMs: 1234.5, frame: 7 });
    });
    assert.equal(vp8Bytes, 6250);
    const next = p.packetize(100, false, 0, 8);
    assert.equal(parseVp8(next[0] as Buffer)?.pictureId, 0x1235);
  });

  it('writes P=0 on key frames and P=1 on delta frames, on the first packet', () => {
    const p = new Vp8Packetizer({ maxPayload });
    const key = p.packetize(31_000, true, 0, 0);
    const delta = p.packetize(6000, false, 0, 1);
    const first = key[0] as Buffer;
    assert.equal((first[4] as number) & 0x01, 0, 'P bit of a key frame');
    assert.deepEqual([...first.subarray(7, 10)], [0x9d, 0x01, 0x2a], 'key frame start code');
    assert.equal(((delta[0] as Buffer)[4] as number) & 0x01, 1, 'P bit of a delta frame');
    assert.deepEqual(
      key.map((b) => isVp8Keyframe(b)),
      key.map((_, i) => i === 0),
    );
    assert.ok(delta.every((b) => !isVp8Keyframe(b)));
  });

  it('writes a TL0PICIDX per frame and the layer size in key frames, for a simulcast layer', () => {
    const p = new Vp8Packetizer({ maxPayload, tl0PicIdx: true, width: 320, height: 180 });
    const key = p.packetize(5000, true, 0, 0);
    const delta = p.packetize(500, false, 0, 1);
    const [k0, k1] = key.map((b) => parseVp8(b));
    const d0 = parseVp8(delta[0] as Buffer);
    assert.ok(k0 && k1 && d0);
    assert.equal(k0.size, 5);
    assert.equal(k0.keyframe, true);
    assert.equal(k1.tl0PicIdx, k0.tl0PicIdx, 'one TL0PICIDX per frame');
    assert.equal(
      d0.tl0PicIdx,
      (k0.tl0PicIdx + 1) & 0xff,
      'every frame is in TL0: it counts frames',
    );
    assert.equal(d0.pictureId, (k0.pictureId + 1) & 0x7fff);
    const header = (key[0] as Buffer).subarray(k0.size);
    assert.deepEqual([...header.subarray(3, 6)], [0x9d, 0x01, 0x2a]);
    assert.deepEqual([header.readUInt16LE(6), header.readUInt16LE(8)], [320, 180]);
  });

  it('gives every packet its own bytes (werift keeps payloads for retransmission)', () => {
    const p = new Vp8Packetizer({ maxPayload });
    const a = p.packetize(3000, false, 1, 1);
    const b = p.packetize(3000, false, 2, 2);
    assert.deepEqual(readProbe(a[0] as Buffer), { sendTimeMs: 1, frame: 1 });
    assert.deepEqual(readProbe(b[0] as Buffer), { sendTimeMs: 2, frame: 2 });
    assert.notEqual((a[0] as Buffer).buffer, (b[0] as Buffer).buffer);
  });
});

describe('H264Packetizer', () => {
  it('sends SPS/PPS in a STAP-A then the IDR in FU-A fragments', () => {
    const p = new H264Packetizer({ maxPayload: 1150, profileLevelId: '42001f' });
    const key = p.packetize(31_000, true, 5, 3);
    const stap = key[0] as Buffer;
    assert.equal((stap[0] as number) & 0x1f, 24);
    assert.equal((stap[3] as number) & 0x1f, 7, 'SPS first');
    assert.deepEqual([...stap.subarray(4, 7)], [0x42, 0x00, 0x1f], 'profile-level-id in the SPS');
    const fragments = key.slice(1);
    assert.ok(fragments.length > 1);
    fragments.forEach((f, i) => {
      assert.equal((f[0] as number) & 0x1f, 28, 'FU-A');
      assert.equal(((f[1] as number) & 0x80) !== 0, i === 0, 'start bit');
      assert.equal(((f[1] as number) & 0x40) !== 0, i === fragments.length - 1, 'end bit');
      assert.equal((f[1] as number) & 0x1f, 5, 'IDR');
      assert.ok(f.length <= 1150);
    });
    assert.ok(key.every((b) => readProbe(b)?.frame === 3));
    assert.deepEqual(
      key.map((b) => isH264Keyframe(b)),
      key.map((_, i) => i <= 1),
    );
    const delta = p.packetize(6000, false, 6, 4);
    assert.ok(delta.every((b) => !isH264Keyframe(b)));
    assert.equal((delta[0] as Buffer)[1], 0x80 | 1, 'FU-A start of a non-IDR slice');
    const small = p.packetize(200, false, 7, 5);
    assert.equal(small.length, 1);
    assert.equal(((small[0] as Buffer)[0] as number) & 0x1f, 1, 'a single NAL unit packet');
  });
});

describe('synthetic sources', () => {
  /** start() sends one frame synchronously; stop() before the timer fires: one frame per call. */
  function frame(source: { start(): void; stop(): void }): void {
    source.start();
    source.stop();
  }

  it('marks the last packet of a video frame and numbers packets across the wrap', () => {
    const sent: RtpPacket[] = [];
    const source = new SyntheticVideoSource(
      { bitrate: 1_500_000, fps: 30, keyframeIntervalMs: 60_000 },
      { initialSequenceNumber: 65_530, send: (p) => sent.push(p) },
    );
    frame(source);
    const first = sent.splice(0);
    assert.ok(first.length > 20, 'the first frame is a (5x larger) key frame');
    assert.ok(isVp8Keyframe(first[0]?.payload as Buffer));
    assert.deepEqual(
      first.map((p) => p.header.marker),
      first.map((_, i) => i === first.length - 1),
    );
    assert.ok(first.every((p) => p.header.timestamp === first[0]?.header.timestamp));
    assert.deepEqual(
      first.slice(0, 8).map((p) => p.header.sequenceNumber),
      [65_530, 65_531, 65_532, 65_533, 65_534, 65_535, 0, 1],
    );
    frame(source);
    const delta = sent.splice(0);
    assert.equal(delta.length, Math.ceil(6250 / (1150 - 4 - PROBE_SIZE)));
    assert.ok(!isVp8Keyframe(delta[0]?.payload as Buffer), 'no key frame without a reason');
    source.requestKeyframe();
    frame(source);
    assert.ok(isVp8Keyframe(sent[0]?.payload as Buffer), 'a PLI makes the next frame key');
    assert.deepEqual(source.stats(), {
      kind: 'video',
      codec: 'vp8',
      packets: first.length + delta.length + sent.length,
      bytes: [...first, ...delta, ...sent].reduce((n, p) => n + 12 + p.payload.length, 0),
      frames: 3,
      keyframes: 2,
      plisReceived: 1,
    });
  });

  it('does not count frames it could not send', () => {
    const sent: RtpPacket[] = [];
    const source = new SyntheticVideoSource(
      {},
      { send: (p) => sent.push(p), canSend: () => false },
    );
    frame(source);
    assert.equal(sent.length, 0);
    assert.equal(source.stats().packets, 0);
  });

  it('sends 160-byte Opus-like audio packets with 20 ms of 48 kHz', () => {
    const sent: RtpPacket[] = [];
    const source = new SyntheticAudioSource({}, { send: (p) => sent.push(p) });
    frame(source);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.payload.length, 160);
    assert.ok(readProbe(sent[0]?.payload as Buffer));
    assert.equal(buildAudioPayload(160, 1, 2).length, 160);
  });

  it('paces video at the configured rate', async () => {
    const sent: RtpPacket[] = [];
    const source = new SyntheticVideoSource({ fps: 50 }, { send: (p) => sent.push(p) });
    source.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    source.stop();
    const frames = source.stats().frames;
    // 500 ms at 50 fps is 25 frames plus the one sent at start; a stall skips frames, never
    // bursts them, so there can be fewer on a loaded machine but never more.
    assert.ok(frames >= 18 && frames <= 27, `${frames} frames in 500 ms`);
    // RTP timestamps follow the sender's clock at 90 kHz.
    const last = sent.filter((p) => p.header.marker);
    const a = last[0] as RtpPacket;
    const b = last.at(-1) as RtpPacket;
    const ticks = (b.header.timestamp - a.header.timestamp) >>> 0;
    const ms = (readProbe(b.payload)?.sendTimeMs ?? 0) - (readProbe(a.payload)?.sendTimeMs ?? 0);
    assert.ok(Math.abs(ticks / 90 - ms) < 0.1, `${ticks} ticks over ${ms} ms`);
  });
});
