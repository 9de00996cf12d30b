import { codecSpecOf } from '@geosfu/media';
import type { RelaySource } from '@geosfu/relay';
import type { Publication } from './Publication.js';

/** One adapter per publication, so that a link that asks twice gets the same source. */
const sources = new WeakMap<Publication, RelaySource>();

/** A local publication as a relay link sees it: its track info, its packets, its keyframes. */
export function relaySourceOf(publication: Publication): RelaySource {
  let source = sources.get(publication);
  if (!source) {
    source = {
      track: {
        trackId: publication.trackId,
        participantSid: publication.participantSid,
        identity: publication.identity,
        kind: publication.kind,
        source: publication.source,
        codec: codecSpecOf(publication.codec),
      },
      attach: (sink) => {
        if (publication.closed) return () => undefined;
        publication.addSubscription(sink);
        return () => publication.removeSubscription(sink);
      },
      // A relay link carries layer 0 (its OutgoingStream sends only that layer for now).
      requestKeyframe: () => publication.requestKeyframe(0),
    };
    sources.set(publication, source);
  }
  return source;
}
