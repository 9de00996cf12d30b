import type { RelaySource } from '@geosfu/relay';
import type { Publication } from './Publication.js';

/** One adapter per publication, so that a link that asks twice gets the same source. */
const sources = new WeakMap<Publication, RelaySource>();

/** A local publication as a relay link sees it: its track info, its packets, its keyframes. */
export function relaySourceOf(publication: Publication): RelaySource {
  let source = sources.get(publication);
  if (!source) {
    const codec = publication.codec;
    source = {
      track: {
        trackId: publication.trackId,
        participantSid: publication.participantSid,
        identity: publication.identity,
        kind: publication.kind,
        source: publication.source,
        codec: {
          mimeType: codec.mimeType,
          clockRate: codec.clockRate,
          ...(codec.channels === undefined ? {} : { channels: codec.channels }),
          ...(codec.parameters === undefined ? {} : { parameters: codec.parameters }),
        },
      },
      attach: (sink) => {
        if (publication.closed) return () => undefined;
        publication.addSubscription(sink);
        return () => publication.removeSubscription(sink);
      },
      requestKeyframe: () => publication.requestKeyframe(),
    };
    sources.set(publication, source);
  }
  return source;
}
