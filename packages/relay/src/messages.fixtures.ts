/** Relay message parts for unit tests: alice's camera as one track of an offer. */
import type { RelayTrack } from './messages.js';

export const videoTrackFixture: RelayTrack = {
  mid: '0',
  trackId: 'TR_v',
  participantSid: 'S1',
  identity: 'alice',
  kind: 'video',
  source: 'camera',
  codec: { mimeType: 'video/VP8', clockRate: 90_000 },
};
