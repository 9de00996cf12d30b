import { codecSpecOf } from '@geosfu/media';
import type { RelaySource } from '@geosfu/relay';
import type { Publication } from './Publication.js';

/** One adapter per publication, so that a link that asks twice gets the same source. */
const sources = new WeakMap<Publication, RelaySource>();

/**
 * A local publication as a relay link sees it: its track info (with its simulcast layers,
 * which the link carries on one m-line each), its packets, its keyframes, and the far node's
 * demand, which counts in the publication's dynacast like a local subscriber's.
 */
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
        ...(publication.simulcast
          ? {
              layers: publication.layers.map(({ rid, width, height, maxBitrate }) => ({
                rid,
                width,
                height,
                maxBitrate,
              })),
            }
          : {}),
      },
      attach: (sink) => {
        if (publication.closed) return () => undefined;
        publication.addSubscription(sink);
        return () => publication.removeSubscription(sink);
      },
      requestKeyframe: (layer) => publication.requestKeyframe(layer),
      setDemand: (sink, layer) => publication.setDemand(sink, layer),
    };
    sources.set(publication, source);
  }
  return source;
}
