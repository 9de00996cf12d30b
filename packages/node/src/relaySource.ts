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
        // Until relays carry the layers the far node asks for: the highest that arrives (a
        // link has no budget of its own), kept while none arrives.
        const follow = () => {
          const top = highestActive(publication);
          if (top >= 0) sink.setTargetLayer(top);
        };
        follow();
        const off = publication.on('layers', follow);
        return () => {
          off();
          publication.removeSubscription(sink);
        };
      },
      requestKeyframe: (layer) =>
        publication.requestKeyframe(layer ?? Math.max(0, highestActive(publication))),
    };
    sources.set(publication, source);
  }
  return source;
}

function highestActive(publication: Publication): number {
  const layers = publication.layers;
  for (let i = layers.length - 1; i >= 0; i--) if (layers[i]?.active) return i;
  return -1;
}
