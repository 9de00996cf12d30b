import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '@geosfu/common';
import { type RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { TransportSweeper } from './TransportSweeper.js';

const config = { bundlePolicy: 'max-bundle', iceStunGatherTimeout: 0 } as const;

async function answer(pc: RTCPeerConnection, sdp: string): Promise<void> {
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
}

test('a transport werift moved m-lines away from is stopped, and close stops them all', async () => {
  const client = new RTCPeerConnection(config);
  const node = new RTCPeerConnection(config);
  const sweeper = new TransportSweeper(node, silentLogger());
  const transports: RTCDtlsTransport[] = [];
  try {
    client.addTransceiver('video', { direction: 'sendonly' });
    await client.setLocalDescription(await client.createOffer());
    const offer = client.localDescription?.sdp ?? '';
    await answer(node, offer);
    assert.equal(sweeper.sweep(), 0, 'nothing to stop after a plain offer');
    const [first] = node.dtlsTransports;
    assert.ok(first);
    transports.push(first);

    // werift gives the second (identical) BUNDLE group a new transport and moves the m-line.
    await answer(node, offer.replace(/^(a=group:BUNDLE[^\r\n]*\r?\n)/m, '$1$1'));
    assert.ok(!node.dtlsTransports.includes(first), 'werift moved the m-line to a new transport');
    assert.equal(sweeper.sweep(), 1);
    assert.equal(first.iceTransport.state, 'closed', 'the dropped transport is stopped');

    const [second] = node.dtlsTransports;
    await sweeper.close();
    assert.equal(second?.iceTransport.state, 'closed');
    assert.equal(node.connectionState, 'closed');
    assert.equal(sweeper.sweep(), 0, 'sweep after close is a no-op');
  } finally {
    // Also when an assertion failed: a socket left open would keep this file from ending.
    await Promise.allSettled([client.close(), sweeper.close(), ...transports.map((t) => t.stop())]);
  }
});
