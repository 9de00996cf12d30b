import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { silentLogger } from '@geosfu/common';
import { type RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { TransportSweeper } from './TransportSweeper.js';
import { setUdpReceiveBuffer, udpReceiveBufferHook } from './udpReceiveBuffer.js';

const config = { bundlePolicy: 'max-bundle', iceStunGatherTimeout: 0 } as const;

/** What Linux reports for a request of `bytes`: doubled, the request capped at rmem_max. */
function expectedSize(bytes: number): number {
  const max = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  return 2 * Math.min(bytes, max);
}

test('each new transport of a node PeerConnection gets the receive buffer asked for', async () => {
  const client = new RTCPeerConnection(config);
  const node = new RTCPeerConnection(config);
  const sized: RTCDtlsTransport[] = [];
  const hook = udpReceiveBufferHook(1_000_000, silentLogger());
  assert.ok(hook);
  const sweeper = new TransportSweeper(node, silentLogger(), (t) => {
    sized.push(t);
    hook(t);
  });
  try {
    client.addTransceiver('video', { direction: 'sendonly' });
    await client.setLocalDescription(await client.createOffer());
    await node.setRemoteDescription({ type: 'offer', sdp: client.localDescription?.sdp ?? '' });
    await node.setLocalDescription(await node.createAnswer());
    sweeper.sweep();
    sweeper.sweep();
    assert.equal(sized.length, 1, 'the hook runs once per transport, not once per sweep');
    const [transport] = node.dtlsTransports;
    assert.ok(transport);
    // Asking again reads the sizes back: every socket of the transport has the new size.
    const sizes = setUdpReceiveBuffer(transport, 1_000_000);
    assert.ok(sizes && sizes.length >= 1, `werift's sockets were found: ${JSON.stringify(sizes)}`);
    for (const size of sizes) assert.equal(size, expectedSize(1_000_000));
    assert.ok(
      (sizes[0] ?? 0) > 2 * 212_992 || expectedSize(1_000_000) <= 2 * 212_992,
      'larger than the Linux default unless rmem_max forbids it',
    );
  } finally {
    await Promise.allSettled([client.close(), sweeper.close()]);
  }
});

test('0 keeps the system default: no hook', () => {
  assert.equal(udpReceiveBufferHook(0, silentLogger()), undefined);
});

test('a request above net.core.rmem_max is capped by the kernel, and the node says so once', async () => {
  const requested = 64 * 1024 * 1024;
  const max = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  const warnings: [object, string][] = [];
  const hook = udpReceiveBufferHook(requested, { warn: (obj, msg) => warnings.push([obj, msg]) });
  assert.ok(hook);
  const pcs = [0, 1].map(() => new RTCPeerConnection(config));
  try {
    for (const pc of pcs) {
      pc.addTransceiver('video', { direction: 'sendonly' });
      await pc.setLocalDescription(await pc.createOffer());
      for (const t of pc.dtlsTransports) hook(t);
    }
    if (max >= requested) return; // A host that allows it has nothing to say.
    assert.equal(warnings.length, 1, 'once for the process, not per PeerConnection');
    assert.match(warnings[0]?.[1] ?? '', /raise net\.core\.rmem_max/);
    assert.deepEqual(warnings[0]?.[0], { bytes: requested, granted: max });
  } finally {
    await Promise.allSettled(pcs.map((pc) => pc.close()));
  }
});
