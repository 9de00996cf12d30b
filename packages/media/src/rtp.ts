/** RTP helpers of the forwarding path. */
import { RtpHeader, RtpPacket } from 'werift';

/** The fixed RTP header (RFC 3550 section 5.1); forwarded packets carry no CSRC or extension. */
export const RTP_HEADER_SIZE = 12;

/**
 * Copies a packet without its header extensions, serialized once so that each subscriber's
 * sender deserializes its own copy. Forwarding the publisher's extensions is wrong (pitfall 5:
 * its transport-cc id 4 overwrote the subscriber's abs-send-time id 4), and werift's sender
 * mutates the header it is given, so one packet object must never go to two senders.
 */
export function forwardablePacket(rtp: RtpPacket): Buffer {
  const h = rtp.header;
  const header = new RtpHeader({
    version: 2,
    padding: false,
    extension: false,
    marker: h.marker,
    payloadType: h.payloadType,
    sequenceNumber: h.sequenceNumber,
    timestamp: h.timestamp,
    ssrc: h.ssrc,
    csrc: [],
    extensions: [],
  });
  return new RtpPacket(header, rtp.payload).serialize();
}
