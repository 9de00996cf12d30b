import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { answerTakesSimulcast, declineSimulcast } from './answerSimulcast.js';

const audio = [
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:0',
  'a=recvonly',
  'a=rtpmap:111 opus/48000/2',
];
const video = (extra: string[]) => [
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'a=mid:1',
  'a=recvonly',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  ...extra,
  'a=rtpmap:96 VP8/90000',
];
const sdp = (...sections: string[][]) =>
  ['v=0', 'o=- 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0', ...sections.flat(), ''].join('\r\n');

const ridLines = ['a=rid:q recv', 'a=rid:h recv', 'a=rid:f recv', 'a=simulcast:recv q;h;f '];
const ridExt = 'a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';

describe('answerTakesSimulcast', () => {
  test('takes it: simulcast:recv and the RID header extension', () => {
    assert.equal(answerTakesSimulcast(sdp(audio, video([ridExt, ...ridLines])), '1'), true);
  });

  test('werift without the RID extension (Chrome would refuse the answer)', () => {
    assert.equal(answerTakesSimulcast(sdp(audio, video(ridLines)), '1'), false);
  });

  test('declined: no simulcast line', () => {
    assert.equal(answerTakesSimulcast(sdp(audio, video([ridExt])), '1'), false);
  });

  test('looks at the m-section of that mid only', () => {
    const answer = sdp(video([ridExt, ...ridLines]), [...audio.slice(0, 1), 'a=mid:2']);
    assert.equal(answerTakesSimulcast(answer, '2'), false);
    assert.equal(answerTakesSimulcast(answer, '9'), false);
  });
});

describe('declineSimulcast', () => {
  test('removes the simulcast and rid lines of that m-section, and nothing else', () => {
    const answer = sdp(audio, video(ridLines));
    const declined = declineSimulcast(answer, '1');
    assert.equal(declined, sdp(audio, video([])));
    assert.equal(answerTakesSimulcast(declined, '1'), false);
  });

  test('leaves other m-sections and unknown mids alone', () => {
    const answer = sdp(video(ridLines), ['m=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', ...ridLines]);
    assert.equal(
      declineSimulcast(answer, '2'),
      sdp(video(ridLines), ['m=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2']),
    );
    assert.equal(declineSimulcast(answer, '7'), answer);
  });
});
