import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SfuError } from '@geosfu/common';
import { parseSdpFragment } from './sdpFragment.js';

const coded = (code: string, pattern: RegExp) => (e: unknown) =>
  e instanceof SfuError && e.code === code && pattern.test(e.message);

test('trickle fragments: credentials, candidates by mid, end of candidates', () => {
  const fragment = parseSdpFragment(
    [
      'a=ice-ufrag:EsAw',
      'a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1',
      'm=audio 9 RTP/AVP 0',
      'a=mid:0',
      'a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0',
      'a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0',
      'a=end-of-candidates',
      '',
    ].join('\r\n'),
  );
  assert.equal(fragment.ufrag, 'EsAw');
  assert.equal(fragment.pwd, 'P2uYro0UCOQ4zxjKXaWCBui1');
  assert.equal(fragment.end, true);
  assert.deepEqual(
    fragment.candidates.map((c) => [c.sdpMid, c.usernameFragment, c.candidate.split(' ')[4]]),
    [
      ['0', 'EsAw', '192.0.2.1'],
      ['0', 'EsAw', '198.51.100.2'],
    ],
  );
  assert.throws(() => parseSdpFragment('hello world'), coded('BAD_REQUEST', /not an SDP/));
  const many = Array.from(
    { length: 65 },
    (_, i) => `a=candidate:${i} 1 udp 1 10.0.0.1 ${i} typ host`,
  );
  assert.throws(() => parseSdpFragment(many.join('\n')), coded('BAD_REQUEST', /more than 64/));
});
