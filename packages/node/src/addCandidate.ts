import type { IceCandidate, Logger } from '@geosfu/common';
import type { RTCPeerConnection } from 'werift';

/**
 * Adds a client's ICE candidate. One the node cannot use (mDNS .local, TCP, another family)
 * is not fatal: ICE proceeds with the others and the node, being ICE-lite, learns
 * peer-reflexive ones.
 */
export async function addCandidate(
  pc: RTCPeerConnection,
  candidate: IceCandidate,
  logger: Logger,
): Promise<void> {
  try {
    await pc.addIceCandidate({
      candidate: candidate.candidate,
      sdpMid: candidate.sdpMid ?? undefined,
      sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
      usernameFragment: candidate.usernameFragment ?? undefined,
    });
  } catch (error) {
    logger.debug({ err: error, candidate: candidate.candidate }, 'ignored ICE candidate');
  }
}
