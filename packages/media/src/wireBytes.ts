/**
 * What one RTP packet costs on the wire: its payload and RTP header, the SRTP auth tag, UDP
 * and IPv4. The bandwidth estimate toward a subscriber counts packets this way (it is what
 * the bottleneck carries), so whatever is spent out of it must be counted the same way: a
 * layer measured by its payload alone looks 5 % cheaper than it is for 1,000-byte video
 * packets, and audio (about 100-byte packets) half as cheap.
 */
export const SRTP_TAG_BYTES = 10;
export const UDP_IP_BYTES = 28;

export function wireBytes(payloadBytes: number, headerBytes: number): number {
  return payloadBytes + headerBytes + SRTP_TAG_BYTES + UDP_IP_BYTES;
}
