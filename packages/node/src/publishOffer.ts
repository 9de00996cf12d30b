/**
 * Checks a client's publish offer before werift sees it: the shape the node's one-transport
 * publisher PeerConnection can take, each break a coded `INVALID_SDP` that leaves the
 * session as it was.
 *
 * Why: werift 0.25 gives each BUNDLE group of a remote offer its own transport, and when a
 * group finds its members' transport already claimed (a second `a=group:BUNDLE` line naming
 * the same mids, another group, an m-line outside the group) it creates a new transport, with
 * a new UDP socket, and moves the members onto it. The transport they had, connected and
 * holding its socket, is then referenced by nothing, so `pc.close()` never stops it: one UDP
 * socket leaked per such offer (issue 20, finding 1). The node answers with `max-bundle`
 * anyway, so it accepts exactly that: one BUNDLE group holding every live m-line, and the
 * same ICE credentials as before (werift would restart ICE on the node's side only, which no
 * client expects; a client that wants a new PeerConnection joins again). A renegotiation also
 * keeps the m-lines it had, in order (RFC 8829 section 5.2.2: m-sections are never removed;
 * only one rejected with port 0 may be recycled for a new mid); werift answered an offer that
 * dropped one and left the dropped m-line's publication without a transceiver.
 */
import { type ClientMessageOf, LIMITS, SfuError } from '@geosfu/common';

export interface OfferSection {
  kind: string;
  mid: string | undefined;
  direction: string;
  /** 0 for a rejected or stopped m-line (RFC 8843 section 7.3.3). */
  port: number;
  /** Simulcast (RFC 8853): the rids of its `a=simulcast:send` line; empty when not simulcast. */
  simulcast: string[];
}

export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

export interface PublishOffer {
  sections: OfferSection[];
  ice: IceCredentials;
}

const DIRECTION_RE = /^a=(sendrecv|sendonly|recvonly|inactive)$/;
const RID_RE = /^a=rid:(\S+) send(?:\s|$)/;

/**
 * The rids of an `a=simulcast:` value's send direction (RFC 8853 section 5.1:
 * `send q;h;f recv ...`, `,` separates alternatives of one stream, `~` marks one paused):
 * the first alternative of each stream.
 */
export function simulcastSendRids(value: string): string[] {
  const tokens = value.trim().split(/\s+/);
  const at = tokens.indexOf('send');
  const list = at < 0 ? undefined : tokens[at + 1];
  if (!list) return [];
  return list
    .split(';')
    .map((stream) => (stream.split(',')[0] ?? '').replace(/^~/, ''))
    .filter(Boolean);
}

/**
 * Parses and checks an offer. `previous` is the last offer the publisher PeerConnection
 * accepted, if any.
 */
export function checkPublishOffer(sdp: string, previous?: PublishOffer): PublishOffer {
  if (!sdp.startsWith('v=0')) throw new SfuError('INVALID_SDP', 'an SDP must start with "v=0"');
  const sections: (OfferSection & { ufrag?: string; pwd?: string; rids: string[] })[] = [];
  const groups: string[][] = [];
  const session: { ufrag?: string; pwd?: string } = {};
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('m=')) {
      const [kind = '', port = ''] = line.slice(2).split(' ');
      sections.push({
        kind,
        mid: undefined,
        direction: 'sendrecv',
        port: Number(port),
        simulcast: [],
        rids: [],
      });
      continue;
    }
    const current = sections[sections.length - 1];
    if (line.startsWith('a=group:BUNDLE')) {
      groups.push(line.slice('a=group:BUNDLE'.length).trim().split(/\s+/).filter(Boolean));
      continue;
    }
    const target = current ?? session;
    if (line.startsWith('a=ice-ufrag:')) target.ufrag = line.slice('a=ice-ufrag:'.length);
    else if (line.startsWith('a=ice-pwd:')) target.pwd = line.slice('a=ice-pwd:'.length);
    if (!current) continue;
    if (line.startsWith('a=mid:')) current.mid = line.slice('a=mid:'.length);
    else if (DIRECTION_RE.test(line)) current.direction = line.slice(2);
    else if (line.startsWith('a=simulcast:'))
      current.simulcast = simulcastSendRids(line.slice('a=simulcast:'.length));
    else {
      const rid = RID_RE.exec(line)?.[1];
      if (rid) current.rids.push(rid);
    }
  }
  if (sections.length === 0) throw new SfuError('INVALID_SDP', 'the offer has no media section');

  const mids = new Set<string>();
  for (const [index, section] of sections.entries()) {
    if (section.mid === undefined || section.mid === '')
      throw new SfuError('INVALID_SDP', `m-line ${index} has no a=mid`);
    if (mids.has(section.mid))
      throw new SfuError('INVALID_SDP', `two m-lines have the mid "${section.mid}"`);
    mids.add(section.mid);
  }
  const [group, ...extra] = groups;
  if (!group || extra.length > 0) {
    throw new SfuError(
      'INVALID_SDP',
      `the offer must have exactly one a=group:BUNDLE line (it has ${groups.length}); the node bundles everything on one transport (bundlePolicy max-bundle)`,
    );
  }
  for (const mid of group) {
    if (!mids.has(mid))
      throw new SfuError('INVALID_SDP', `the BUNDLE group names "${mid}", which no m-line has`);
  }
  const live = sections.filter((s) => s.port !== 0);
  for (const section of live) {
    if (!group.includes(section.mid ?? '')) {
      throw new SfuError(
        'INVALID_SDP',
        `m-line "${section.mid}" is not in the BUNDLE group; put every m-line in it (max-bundle)`,
      );
    }
  }

  checkSimulcast(live);

  let ice: IceCredentials | undefined;
  for (const section of live) {
    const ufrag = section.ufrag ?? session.ufrag;
    const pwd = section.pwd ?? session.pwd;
    if (!ufrag || !pwd)
      throw new SfuError('INVALID_SDP', `m-line "${section.mid}" has no a=ice-ufrag / a=ice-pwd`);
    if (ice && (ice.ufrag !== ufrag || ice.pwd !== pwd)) {
      throw new SfuError(
        'INVALID_SDP',
        'the bundled m-lines have different ICE credentials; one transport has one ufrag',
      );
    }
    ice = { ufrag, pwd };
  }
  if (!ice) throw new SfuError('INVALID_SDP', 'every m-line of the offer is rejected (port 0)');
  if (previous) checkKeepsMLines(sections, previous.sections);
  if (previous && (previous.ice.ufrag !== ice.ufrag || previous.ice.pwd !== ice.pwd)) {
    throw new SfuError(
      'INVALID_SDP',
      'the offer changes the ICE credentials (an ICE restart), which the node does not support; join again for a new PeerConnection',
    );
  }
  return {
    sections: sections.map(({ kind, mid, direction, port, simulcast }) => ({
      kind,
      mid,
      direction,
      port,
      simulcast,
    })),
    ice,
  };
}

/**
 * Each simulcast m-line sends rids it declares with `a=rid:<rid> send`, at most
 * LIMITS.maxSimulcastLayers of them, and no rid is on two m-lines: werift routes a packet by
 * its RID header extension alone, per transport, so a rid on two m-lines would send one
 * m-line's layer to the other's track.
 */
function checkSimulcast(live: readonly (OfferSection & { rids: string[] })[]): void {
  const owner = new Map<string, string | undefined>();
  for (const section of live) {
    if (section.simulcast.length === 0) continue;
    if (section.kind !== 'video') {
      throw new SfuError(
        'INVALID_SDP',
        `m-line "${section.mid}" is ${section.kind}: simulcast is for video`,
      );
    }
    if (section.simulcast.length > LIMITS.maxSimulcastLayers) {
      throw new SfuError(
        'INVALID_SDP',
        `m-line "${section.mid}" sends ${section.simulcast.length} simulcast layers; at most ${LIMITS.maxSimulcastLayers}`,
      );
    }
    for (const rid of section.simulcast) {
      if (!section.rids.includes(rid)) {
        throw new SfuError(
          'INVALID_SDP',
          `m-line "${section.mid}" sends simulcast rid "${rid}" without an "a=rid:${rid} send" line`,
        );
      }
      if (owner.has(rid)) {
        throw new SfuError(
          'INVALID_SDP',
          `the rid "${rid}" is on m-lines "${owner.get(rid)}" and "${section.mid}"; give each simulcast m-line its own rids`,
        );
      }
      owner.set(rid, section.mid);
    }
  }
}

/**
 * A published track's declared `layers` against its m-line: a simulcast video declares
 * exactly the rids of its `a=simulcast:send` line (in any order: the request's is lowest
 * first), a video that is not simulcast declares none, audio never does.
 */
export function checkTrackLayers(
  track: { mid: string; kind: string; layers?: readonly { rid: string }[] | undefined },
  section: OfferSection,
): void {
  const offered = section.simulcast;
  const declared = track.layers?.map((l) => l.rid);
  if (declared && track.kind !== 'video') {
    throw new SfuError(
      'BAD_REQUEST',
      `track "${track.mid}" is ${track.kind}: only a video track has simulcast layers`,
    );
  }
  if (!declared) {
    if (offered.length === 0) return;
    throw new SfuError(
      'INVALID_SDP',
      `m-line "${track.mid}" sends simulcast (rids ${offered.join(', ')}): describe the layers in the track's "layers" (rid, width, height, maxBitrate, lowest first)`,
    );
  }
  if (offered.length === 0) {
    throw new SfuError(
      'INVALID_SDP',
      `track "${track.mid}" declares layers ${declared.join(', ')} but its m-line has no a=simulcast:send line`,
    );
  }
  const missing = offered.filter((rid) => !declared.includes(rid));
  const extra = declared.filter((rid) => !offered.includes(rid));
  if (missing.length > 0 || extra.length > 0) {
    const parts = [
      extra.length > 0 ? `declared but not in the offer: ${extra.join(', ')}` : '',
      missing.length > 0 ? `in the offer but not declared: ${missing.join(', ')}` : '',
    ].filter(Boolean);
    throw new SfuError(
      'INVALID_SDP',
      `the layers of track "${track.mid}" are not its m-line's simulcast rids (${parts.join('; ')})`,
    );
  }
}

function checkKeepsMLines(sections: readonly OfferSection[], before: readonly OfferSection[]) {
  if (sections.length < before.length) {
    throw new SfuError(
      'INVALID_SDP',
      `the offer has ${sections.length} m-lines, the last one had ${before.length}: m-lines are never removed, reject one with port 0 instead`,
    );
  }
  for (const [index, old] of before.entries()) {
    const now = sections[index];
    if (!now || old.port === 0) continue; // a rejected m-line may be recycled
    if (now.mid !== old.mid || now.kind !== old.kind) {
      throw new SfuError(
        'INVALID_SDP',
        `m-line ${index} was ${old.kind} "${old.mid}" and is now ${now.kind} "${now.mid}"; keep the m-lines in their order`,
      );
    }
  }
}

/** A track as a `publish` request declares it. */
export type OfferedTrack = ClientMessageOf<'publish'>['tracks'][number];

/**
 * WHIP: the tracks a publisher's offer sends, one per live audio or video m-line that sends
 * (what our own clients declare in `publish`). Simulcast is refused: the sizes and bitrates of
 * its layers, which the node's layer choice needs, are not in an SDP.
 */
export function offeredTracks(offer: PublishOffer): OfferedTrack[] {
  const tracks: OfferedTrack[] = [];
  for (const section of offer.sections) {
    if (section.port === 0 || section.mid === undefined) continue;
    if (section.kind !== 'audio' && section.kind !== 'video') continue;
    if (section.direction !== 'sendonly' && section.direction !== 'sendrecv') continue;
    if (section.simulcast.length > 0) {
      throw new SfuError(
        'INVALID_SDP',
        `m-line "${section.mid}" sends simulcast, which WHIP ingest does not take (the layers' sizes are not in the SDP); send one layer`,
      );
    }
    tracks.push({
      mid: section.mid,
      kind: section.kind,
      source: section.kind === 'audio' ? 'microphone' : 'camera',
    });
  }
  if (tracks.length === 0)
    throw new SfuError('INVALID_SDP', 'the offer sends no audio or video (no sendonly m-line)');
  if (tracks.length > LIMITS.maxTracksPerParticipant) {
    throw new SfuError(
      'TOO_MANY_TRACKS',
      `the offer sends ${tracks.length} tracks; at most ${LIMITS.maxTracksPerParticipant}`,
    );
  }
  return tracks;
}

/**
 * WHEP: checks a viewer's offer: the shape `checkPublishOffer` asks of any offer (one BUNDLE
 * group, one set of ICE credentials), and at least one live audio or video m-line that
 * receives.
 */
export function checkViewerOffer(sdp: string): PublishOffer {
  const offer = checkPublishOffer(sdp);
  const receiving = offer.sections.filter(
    (s) =>
      s.port !== 0 &&
      (s.kind === 'audio' || s.kind === 'video') &&
      (s.direction === 'recvonly' || s.direction === 'sendrecv'),
  );
  if (receiving.length === 0)
    throw new SfuError('INVALID_SDP', 'the offer receives no audio or video (no recvonly m-line)');
  if (offer.sections.length > LIMITS.maxTracksPerParticipant) {
    throw new SfuError(
      'TOO_MANY_TRACKS',
      `the offer has ${offer.sections.length} m-lines; at most ${LIMITS.maxTracksPerParticipant}`,
    );
  }
  return offer;
}

/**
 * An offer's `a=bundle-only` m-lines with port 0 (RFC 8843 section 6: a max-bundle offerer
 * such as GStreamer's webrtcbin sends its bundled m-lines so) given the port 9 of a live
 * m-line: werift reads port 0 as rejected and would answer the m-line rejected. Nothing else
 * changes: the m-line is in the BUNDLE group and shares its transport either way.
 */
export function withBundleOnlyPorts(sdp: string): string {
  const lines = sdp.split(/\r\n|\n/);
  let section = -1;
  const bundleOnly = new Set<number>();
  for (const line of lines) {
    if (line.startsWith('m=')) section++;
    else if (line.trim() === 'a=bundle-only' && section >= 0) bundleOnly.add(section);
  }
  if (bundleOnly.size === 0) return sdp;
  section = -1;
  return lines
    .map((line) => {
      if (!line.startsWith('m=')) return line;
      section++;
      return bundleOnly.has(section) ? line.replace(/^m=(\S+) 0 /, 'm=$1 9 ') : line;
    })
    .join('\r\n');
}
