/**
 * The bot's media path without the SFU: a BotPublisher talks to a plain werift peer (or to a
 * BotSubscriber) on 127.0.0.1, proving the generator, the PLI path, the loss option and the
 * receive measurements before a server exists.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { silentLogger } from '@geosfu/common';
import type { SubscribedTrack } from '@geosfu/common/protocol';
import { RTCPeerConnection as PeerConnection, type RTCPeerConnection, useOPUS } from 'werift';
import { peerConfig, subscriberVideoCodecs } from './peer.js';
import { BotPublisher, type PublishExchange, type PublishOptions } from './publisher.js';
import { BotSubscriber } from './subscriber.js';

const LOOPBACK = { hostAddresses: ['127.0.0.1'] };
const log = silentLogger();

/** Everything a test opens, closed after it even when an assertion fails. */
const toClose: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.allSettled(toClose.splice(0).map((c) => c.close()));
});

/** Conditions re-evaluated on every received packet (`poke`), each with its own deadline. */
const conditions = new Set<() => void>();
function poke(): void {
  for (const c of [...conditions]) c();
}
function waitUntil(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const evaluate = () => {
      if (!check()) return;
      clearTimeout(timer);
      conditions.delete(evaluate);
      resolve();
    };
    const timer = setTimeout(() => {
      conditions.delete(evaluate);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    conditions.add(evaluate);
    evaluate();
  });
}

function plainPeer(): RTCPeerConnection {
  const pc = new PeerConnection(
    peerConfig(LOOPBACK, { video: subscriberVideoCodecs(), audio: [useOPUS()] }),
  );
  toClose.push(pc);
  return pc;
}

function answerWith(pc: RTCPeerConnection): PublishExchange {
  return async (sdp, tracks) => {
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    return {
      sdp: pc.localDescription?.sdp ?? '',
      tracks: tracks.map((t) => ({ mid: t.mid, trackId: `TR_${t.mid}` })),
    };
  };
}

function subscribeWith(subscriber: BotSubscriber, identity: string): PublishExchange {
  return async (sdp, tracks) => {
    const subscribed: SubscribedTrack[] = tracks.map((t) => ({
      mid: t.mid,
      trackId: `TR_${t.mid}`,
      participantSid: 'PA_pub',
      identity,
      kind: t.kind,
    }));
    await subscriber.applyOffer(sdp, subscribed);
    return { sdp: await subscriber.createAnswer(), tracks: subscribed };
  };
}

function publisher(options: PublishOptions, lossPercent?: number): BotPublisher {
  const p = new BotPublisher(options, { ...LOOPBACK, outboundLossPercent: lossPercent }, log);
  toClose.push(p);
  return p;
}

describe('BotPublisher into a plain werift peer', () => {
  it('delivers every packet and key frame, and answers a PLI with a key frame', async () => {
    const pc = plainPeer();
    const received = { video: 0, audio: 0, keyframes: 0 };
    pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        if (track.kind === 'video') {
          received.video++;
          // Parsed here by hand, independently of packetizer.ts: X=1, I=1, M=1 descriptor
          // (4 bytes), S bit 0x10 in the first byte, P bit in the first byte after it.
          const p = rtp.payload;
          if (((p[0] as number) & 0x10) !== 0 && ((p[4] as number) & 0x01) === 0) {
            received.keyframes++;
          }
        } else {
          received.audio++;
        }
        poke();
      });
    });
    const pub = publisher({ keyframeIntervalMs: 60_000 });
    await pub.negotiate(answerWith(pc));
    await pub.start();

    await waitUntil('the first key frame', () => received.keyframes >= 1);
    // Well after the first frame, ask for a key frame: only the PLI can produce a second one.
    await waitUntil('30 video frames', () => (pub.stats()[0]?.frames ?? 0) >= 30);
    assert.equal(received.keyframes, 1);
    const receiver = pc.getTransceivers().find((t) => t.kind === 'video')?.receiver;
    assert.ok(receiver);
    await receiver.sendRtcpPLI(receiver.track.ssrc as number);
    await waitUntil('a key frame after the PLI', () => received.keyframes >= 2);

    pub.stopSource('video');
    pub.stopSource('audio');
    const [video, audio] = pub.stats();
    assert.ok(video && audio);
    await waitUntil(
      'every sent packet',
      () => received.video === video.packets && received.audio === audio.packets,
      2000,
    );
    assert.equal(video.keyframes, 2);
    assert.equal(video.plisReceived, 1);
    assert.equal(received.keyframes, 2);
    assert.ok(audio.packets >= 40, `${audio.packets} audio packets in ~1 s`);
    assert.ok(video.bytes / video.frames > 5000, 'about 6 kB per frame at 1.5 Mbit/s, 30 fps');
  });
});

function subscriber(): { sub: BotSubscriber; firstKeyframes: number[] } {
  const firstKeyframes: number[] = [];
  const sub = new BotSubscriber(LOOPBACK, log, {
    keyframe: (_identity, kind, atMs, first) => {
      if (first && kind === 'video') firstKeyframes.push(atMs);
      poke();
    },
    packet: () => poke(),
  });
  toClose.push(sub);
  return { sub, firstKeyframes };
}

describe('BotPublisher into a BotSubscriber', () => {
  it('measures packets, key frames, latency and jitter without loss', async () => {
    const { sub, firstKeyframes } = subscriber();
    // Video sends ~200 packets/s, so its sequence numbers wrap within the first half second.
    const pub = publisher({ keyframeIntervalMs: 500, initialSequenceNumber: 65_450 });
    await pub.negotiate(subscribeWith(sub, 'pub'));
    await pub.start();
    await waitUntil('60 audio packets', () => (sub.stream('pub', 'audio')?.packets ?? 0) >= 60);
    const stats = sub.stats();
    const video = stats.find((s) => s.kind === 'video');
    const audio = stats.find((s) => s.kind === 'audio');
    assert.ok(video && audio, JSON.stringify(stats));
    assert.equal(video.participant, 'pub');
    assert.equal(video.codec, 'vp8');
    assert.equal(audio.codec, 'opus');
    assert.deepEqual(firstKeyframes, [video.firstKeyframeAtMs]);
    // ~1.2 s with a key frame every 500 ms: the first plus two periodic ones.
    assert.ok(video.keyframes >= 2 && video.keyframes <= 4, `${video.keyframes} key frames`);
    assert.equal(video.lost, 0);
    assert.equal(audio.lost, 0);
    assert.ok(video.packets > 100, 'past the wrap');
    assert.equal(video.expected, video.packets);
    const p50 = video.latencyMs.p50 as number;
    assert.ok(p50 > 0 && p50 < 50, `loopback p50 latency ${p50} ms`);
    assert.ok(audio.jitterMs >= 0 && audio.jitterMs < 20, `audio jitter ${audio.jitterMs} ms`);
    assert.ok(video.bitrateKbps > 1000 && video.bitrateKbps < 2500, `${video.bitrateKbps} kbps`);
  });

  it('loses the configured share of audio and recovers video by NACK', async () => {
    const { sub } = subscriber();
    const pub = publisher({ keyframeIntervalMs: 60_000 }, 20);
    await pub.negotiate(subscribeWith(sub, 'lossy'));
    await pub.start();
    await waitUntil(
      '100 audio packets',
      () => (sub.stream('lossy', 'audio')?.stats().expected ?? 0) >= 100,
      8000,
    );
    const audio = sub.stats().find((s) => s.kind === 'audio');
    const video = sub.stats().find((s) => s.kind === 'video');
    assert.ok(audio && video);
    // Audio has no NACK: what werift drops stays lost. 20% of 100 is 20 +- 4: 3 sigma wide.
    const audioLoss = audio.lost / audio.expected;
    assert.ok(audioLoss > 0.08 && audioLoss < 0.35, `audio loss ${audioLoss}`);
    // Video is NACKed by werift's receiver and retransmitted from the sender's history.
    assert.ok(video.recovered > 0, 'some video packets came back by retransmission');
    const videoLoss = video.lost / video.expected;
    assert.ok(videoLoss < 0.05, `video loss after NACK ${video.lost}/${video.expected}`);
  });

  it("publishes H264 with Chrome's 42001f profile and detects its key frames", async () => {
    const { sub, firstKeyframes } = subscriber();
    const pub = publisher({ audio: false, videoCodec: 'h264', h264ProfileLevelId: '42001f' });
    await pub.negotiate(subscribeWith(sub, 'h264pub'));
    assert.match(pub.pc.localDescription?.sdp ?? '', /profile-level-id=42001f/);
    await pub.start();
    await waitUntil('an H264 key frame', () => firstKeyframes.length > 0);
    const [video] = sub.stats();
    assert.equal(video?.codec, 'h264');
    assert.equal(video?.keyframes, 1);
  });
});
