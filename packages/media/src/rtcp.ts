/** RTCP feedback a node builds itself toward publishers. */
import {
  PictureLossIndication,
  ReceiverEstimatedMaxBitrate,
  RtcpPayloadSpecificFeedback,
} from 'werift';

/** A REMB packet (draft-alvestrand-rmcat-remb) telling a publisher how much it may send. */
export function rembPacket(senderSsrc: number, mediaSsrcs: number[], bitrate: number) {
  // bitrate = mantissa * 2^exp with an 18-bit mantissa.
  let exp = 0;
  let mantissa = Math.floor(bitrate);
  while (mantissa >= 1 << 18) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  return new RtcpPayloadSpecificFeedback({
    feedback: new ReceiverEstimatedMaxBitrate({
      senderSsrc,
      mediaSsrc: 0,
      brExp: exp,
      brMantissa: mantissa,
      ssrcNum: mediaSsrcs.length,
      ssrcFeedbacks: mediaSsrcs,
    }),
  });
}

/** A PLI (RFC 4585 section 6.3.1): asks a publisher for a keyframe of `mediaSsrc`. */
export function pliPacket(senderSsrc: number, mediaSsrc: number) {
  return new RtcpPayloadSpecificFeedback({
    feedback: new PictureLossIndication({ senderSsrc, mediaSsrc }),
  });
}
