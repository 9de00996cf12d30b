import type { RTCPeerConnection } from 'werift';

/** The candidate types of a PeerConnection's selected pair. */
export interface SelectedPair {
  local: string;
  remote: string;
}

/** The candidate types of the pair `pc` nominated; null while it has none. */
export async function selectedPair(pc: RTCPeerConnection): Promise<SelectedPair | null> {
  const report = await pc.getStats();
  const entries = [...report.values()] as unknown as Record<string, unknown>[];
  const pair = entries.find((e) => e.type === 'candidate-pair' && e.nominated === true);
  if (!pair) return null;
  const typeOf = (id: unknown) =>
    String(entries.find((e) => e.id === id)?.candidateType ?? 'unknown');
  return { local: typeOf(pair.localCandidateId), remote: typeOf(pair.remoteCandidateId) };
}
