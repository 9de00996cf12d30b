import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RTP_STREAM_ID_EXTMAP, RTP_STREAM_ID_URI, simulcastOffer } from './simulcast.js';

const SDP = [
  'v=0',
  'o=- 1 1 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'a=mid:0',
  'a=sendonly',
  'a=ssrc-group:FID 1 2',
  'a=ssrc:1 cname:x',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:1',
  'a=sendonly',
  'a=ssrc:3 cname:x',
  '',
].join('\r\n');

test('simulcastOffer turns one m-line into a simulcast one, as Chrome offers it', () => {
  const out = simulcastOffer(SDP, '0', ['q', 'h', 'f']);
  const [, video = '', audio = ''] = out.split(/\r\nm=/);
  assert.match(video, new RegExp(`a=extmap:${RTP_STREAM_ID_EXTMAP} ${RTP_STREAM_ID_URI}`));
  assert.match(video, /a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f/);
  assert.doesNotMatch(video, /a=ssrc/, 'the layers announce their SSRCs with their rids');
  assert.match(audio, /a=ssrc:3 cname:x/, 'other m-lines are left alone');
  assert.doesNotMatch(audio, /rid|simulcast/);
  assert.throws(() => simulcastOffer(SDP, '7', ['q']), /no m-line with mid "7"/);
});
