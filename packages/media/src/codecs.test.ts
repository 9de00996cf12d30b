import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audioCodecs, codecFromSpec, codecSpecOf, videoCodecs } from './codecs.js';

test('a negotiated codec survives the trip through a CodecSpec', () => {
  for (const codec of [...videoCodecs(), ...audioCodecs()]) {
    const spec = codecSpecOf(codec);
    // What relay messages carry is plain JSON: no werift object, no undefined fields.
    assert.deepEqual(JSON.parse(JSON.stringify(spec)), spec);
    const back = codecFromSpec(spec);
    assert.equal(back.mimeType, codec.mimeType);
    assert.equal(back.clockRate, codec.clockRate);
    assert.equal(back.channels, codec.channels);
    assert.equal(back.parameters, codec.parameters);
  }
});

test('relayed video negotiates NACK and PLI, relayed audio no feedback', () => {
  const video = codecFromSpec({ mimeType: 'video/VP8', clockRate: 90000 });
  assert.deepEqual(video.rtcpFeedback, [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }]);
  const audio = codecFromSpec({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 });
  assert.deepEqual(audio.rtcpFeedback, []);
  assert.equal(audio.channels, 2);
  assert.equal('parameters' in codecSpecOf(audio), false, 'absent fields stay absent');
});
