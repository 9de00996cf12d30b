import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Vp8Munger } from './Vp8Munger.js';
import { isVp8Keyframe, parseVp8, writeVp8PictureId, writeVp8Tl0PicIdx } from './vp8.js';

/** A VP8 payload as Chrome sends it: X, I (15-bit M), L, T, then the payload header. */
function vp8Payload(options: {
  pictureId?: number;
  shortPictureId?: boolean;
  tl0PicIdx?: number;
  temporalId?: number;
  layerSync?: boolean;
  start?: boolean;
  keyframe?: boolean;
}): Buffer {
  const bytes: number[] = [];
  const x =
    (options.pictureId !== undefined ? 0x80 : 0) |
    (options.tl0PicIdx !== undefined ? 0x40 : 0) |
    (options.temporalId !== undefined ? 0x20 : 0);
  bytes.push((x ? 0x80 : 0) | ((options.start ?? true) ? 0x10 : 0));
  if (x) bytes.push(x);
  if (options.pictureId !== undefined) {
    if (options.shortPictureId) bytes.push(options.pictureId & 0x7f);
    else bytes.push(0x80 | ((options.pictureId >> 8) & 0x7f), options.pictureId & 0xff);
  }
  if (options.tl0PicIdx !== undefined) bytes.push(options.tl0PicIdx & 0xff);
  if (options.temporalId !== undefined)
    bytes.push((options.temporalId << 6) | (options.layerSync ? 0x20 : 0));
  // VP8 payload header: P bit clear for a keyframe; then some frame bytes.
  bytes.push(options.keyframe ? 0x10 : 0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a);
  return Buffer.from(bytes);
}

test('parses a full descriptor: 15-bit PictureID, TL0PICIDX, TID and Y', () => {
  const p = vp8Payload({ pictureId: 0x1234, tl0PicIdx: 200, temporalId: 2, layerSync: true });
  const d = parseVp8(p);
  assert.ok(d);
  assert.equal(d.pictureId, 0x1234);
  assert.equal(d.pictureIdBits, 15);
  assert.equal(d.tl0PicIdx, 200);
  assert.equal(d.temporalId, 2);
  assert.equal(d.layerSync, true);
  assert.equal(d.size, 6);
  assert.equal(d.frameStart, true);
  assert.equal(d.keyframe, false);
});

test('keyframes: the P bit of the first packet of partition 0', () => {
  assert.equal(isVp8Keyframe(vp8Payload({ pictureId: 1, keyframe: true })), true);
  assert.equal(isVp8Keyframe(vp8Payload({ pictureId: 1, keyframe: false })), false);
  assert.equal(isVp8Keyframe(vp8Payload({ keyframe: true })), true, 'without X');
  assert.equal(isVp8Keyframe(vp8Payload({ keyframe: true, start: false })), false, 'not a start');
  assert.equal(isVp8Keyframe(Buffer.alloc(0)), false);
});

test('a truncated descriptor is not parsed', () => {
  const p = vp8Payload({ pictureId: 0x1234, tl0PicIdx: 3 });
  for (let n = 1; n < 5; n++) assert.equal(parseVp8(p.subarray(0, n)), undefined, `${n} bytes`);
});

test('rewrites PictureID (7 and 15 bits) and TL0PICIDX in place, modulo their width', () => {
  const p = vp8Payload({ pictureId: 5, tl0PicIdx: 9, temporalId: 0 });
  const d = parseVp8(p);
  assert.ok(d);
  writeVp8PictureId(p, d, 0x8000 + 77);
  writeVp8Tl0PicIdx(p, d, 256 + 4);
  const after = parseVp8(p);
  assert.equal(after?.pictureId, 77);
  assert.equal(after?.tl0PicIdx, 4);
  assert.equal(after?.temporalId, 0, 'the rest is untouched');

  const short = vp8Payload({ pictureId: 5, shortPictureId: true });
  const ds = parseVp8(short);
  assert.equal(ds?.pictureIdBits, 7);
  assert.ok(ds);
  writeVp8PictureId(short, ds, 130);
  assert.equal(parseVp8(short)?.pictureId, 2);
});

test('PictureID and TL0PICIDX continue across switches between layers', () => {
  const m = new Vp8Munger();
  const layers = [
    { picture: 32_760, tl0: 250 },
    { picture: 5, tl0: 17 },
    { picture: 1_000, tl0: 0 },
  ];
  let lastPicture: number | undefined;
  let lastTl0: number | undefined;
  for (let s = 0; s < 21; s++) {
    const l = layers[s % 3];
    assert.ok(l);
    for (let frame = 0; frame < 5; frame++) {
      const payload = vp8Payload({
        pictureId: l.picture & 0x7fff,
        tl0PicIdx: l.tl0 & 0xff,
        temporalId: 0,
        keyframe: frame === 0,
      });
      const d = parseVp8(payload);
      assert.ok(d);
      if (frame === 0) m.switchTo(d);
      m.rewrite(payload, d);
      const out = parseVp8(payload);
      assert.ok(out);
      if (lastPicture !== undefined) assert.equal(out.pictureId, (lastPicture + 1) & 0x7fff);
      if (lastTl0 !== undefined) assert.equal(out.tl0PicIdx, (lastTl0 + 1) & 0xff);
      lastPicture = out.pictureId;
      lastTl0 = out.tl0PicIdx;
      l.picture++;
      l.tl0++;
    }
  }
});
