/**
 * Whether a publisher answer takes our simulcast offer, and the answer without it when not.
 *
 * A node that does not receive simulcast answers an offer's `a=simulcast:send` in one of two
 * ways: it leaves `a=simulcast` out (declined, RFC 8853 section 5.3: the browser then sends
 * the first encoding alone), or, as werift does when the RID header extension is not in its
 * configuration, it echoes `a=simulcast:recv` without negotiating the extension, which Chrome
 * refuses outright ("negotiates simulcast but does not negotiate the RID RTP header
 * extension"), so the camera would not be sent at all. The page takes the second kind as the
 * first: it removes the simulcast lines from that m-section before applying the answer, and
 * sends one layer. Pure, so that it is tested without a browser.
 */

const RID_EXTENSION = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';

/** The lines of the m-section with `a=mid:<mid>`, as [start, end) line indices. */
function sectionOf(lines: readonly string[], mid: string): [number, number] | null {
  let start = -1;
  for (let i = 0; i <= lines.length; i++) {
    const line = lines[i];
    if (line === undefined || line.startsWith('m=')) {
      if (start >= 0 && lines.slice(start, i).includes(`a=mid:${mid}`)) return [start, i];
      start = i;
    }
  }
  return null;
}

/** Whether the answer's m-section `mid` receives simulcast with the RID header extension. */
export function answerTakesSimulcast(sdp: string, mid: string): boolean {
  const lines = sdp.split(/\r?\n/);
  const range = sectionOf(lines, mid);
  if (!range) return false;
  const section = lines.slice(...range);
  const simulcast = section.some((l) => l.startsWith('a=simulcast:recv'));
  const rid = section.some((l) => l.startsWith('a=extmap:') && l.includes(RID_EXTENSION));
  return simulcast && rid;
}

/** The answer with no `a=simulcast` and `a=rid` lines in m-section `mid` (simulcast declined). */
export function declineSimulcast(sdp: string, mid: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(/\r?\n/);
  const range = sectionOf(lines, mid);
  if (!range) return sdp;
  const [start, end] = range;
  const kept = lines.filter(
    (line, i) =>
      i < start || i >= end || !(line.startsWith('a=simulcast:') || line.startsWith('a=rid:')),
  );
  return kept.join(eol);
}
