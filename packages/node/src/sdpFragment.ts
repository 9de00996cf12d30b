/**
 * Trickle ICE SDP fragments (RFC 8840 section 9, media type `application/trickle-ice-sdpfrag`),
 * the body of a WHIP or WHEP PATCH (RFC 9725 section 4.3.1): ICE credentials, then per media
 * section its mid and candidates.
 */
import { type IceCandidate, SfuError } from '@geosfu/common';

export interface SdpFragment {
  ufrag: string | undefined;
  pwd: string | undefined;
  candidates: IceCandidate[];
  /** `a=end-of-candidates` was present. */
  end: boolean;
}

/** At most this many candidates in one PATCH: a client gathers a handful per interface. */
const MAX_CANDIDATES = 64;

export function parseSdpFragment(text: string): SdpFragment {
  const fragment: SdpFragment = { ufrag: undefined, pwd: undefined, candidates: [], end: false };
  let mid: string | undefined;
  let mLineIndex = -1;
  let sectionUfrag: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    if (!/^[a-z]=/.test(line))
      throw new SfuError('BAD_REQUEST', `not an SDP fragment line: "${line.slice(0, 60)}"`);
    if (line.startsWith('m=')) {
      mLineIndex++;
      mid = undefined;
      sectionUfrag = undefined;
    } else if (line.startsWith('a=mid:')) mid = line.slice('a=mid:'.length);
    else if (line.startsWith('a=ice-ufrag:')) {
      const ufrag = line.slice('a=ice-ufrag:'.length);
      if (mLineIndex < 0) fragment.ufrag = ufrag;
      else sectionUfrag = ufrag;
      fragment.ufrag ??= ufrag;
    } else if (line.startsWith('a=ice-pwd:')) fragment.pwd ??= line.slice('a=ice-pwd:'.length);
    else if (line === 'a=end-of-candidates') fragment.end = true;
    else if (line.startsWith('a=candidate:')) {
      if (fragment.candidates.length >= MAX_CANDIDATES)
        throw new SfuError('BAD_REQUEST', `more than ${MAX_CANDIDATES} candidates in one PATCH`);
      const ufrag = sectionUfrag ?? fragment.ufrag;
      fragment.candidates.push({
        candidate: line.slice(2),
        // The fragment's m-lines need not be all of the offer's, so its own index says
        // nothing: the mid names the section (and with BUNDLE all share one transport).
        sdpMid: mid ?? null,
        sdpMLineIndex: mid === undefined ? 0 : null,
        ...(ufrag ? { usernameFragment: ufrag } : {}),
      });
    }
  }
  return fragment;
}
