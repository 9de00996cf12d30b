import { Socket } from 'node:dgram';
import type { RTCDtlsTransport } from 'werift';

/**
 * Gives the UDP sockets under a werift DTLS transport a larger receive buffer (SO_RCVBUF).
 *
 * A node's event loop is busy in bursts (a keyframe fanned out to every subscriber, a GC
 * pause, a stats run). Meanwhile the kernel queues arriving media in the socket's receive
 * buffer, and Linux's default (net.core.rmem_default, 208 KiB: ~90 datagrams of 1,200 bytes,
 * 60 ms of a 1,500 packet/s publisher) drops the rest. `npm run bench -- cores` saw a node at
 * 55 % of a core lose 1.5 % of its input at the publisher's socket; with 1 MiB, none until
 * the node (or the host) ran out of CPU. The buffer is sized in time, not as large as possible: the kernel
 * counts about twice each 1,200-byte datagram, so 1 MiB is ~450 packets, about 1 s of a
 * simulcast publisher and 100 ms of a relay link that carries ten; a larger one would only
 * hand an overloaded node seconds-old media instead of a loss the receiver NACKs. (LiveKit
 * asks for a few MiB, but on one socket that all its participants share.)
 *
 * werift creates the sockets inside its ICE agent and exposes none of them: this reaches its
 * internals (the ICE connection's `protocols`, each a `transport` holding a dgram `socket`)
 * and does nothing when they are not that shape.
 *
 * Returns the sockets' new sizes as the kernel reports them (Linux doubles the request for
 * its bookkeeping and caps it at net.core.rmem_max), or undefined when werift's internals
 * were not found.
 */
export function setUdpReceiveBuffer(
  transport: RTCDtlsTransport,
  bytes: number,
): number[] | undefined {
  const connection: unknown = transport.iceTransport.connection;
  const protocols = (connection as { protocols?: unknown }).protocols;
  if (!Array.isArray(protocols)) return undefined;
  const sizes: number[] = [];
  for (const protocol of protocols as unknown[]) {
    const socket = (protocol as { transport?: { socket?: unknown } } | undefined)?.transport
      ?.socket;
    if (!(socket instanceof Socket)) continue;
    try {
      socket.setRecvBufferSize(bytes);
      sizes.push(socket.getRecvBufferSize());
    } catch {
      // Not bound yet or already closed: nothing to size.
    }
  }
  return sizes;
}

/**
 * The per-transport hook a node's PeerConnections use (TransportSweeper's `onTransport`):
 * sizes each new transport's sockets to `bytes` (0: leave the system's default), and warns
 * once per process when werift's internals are not what this was written against.
 */
export function udpReceiveBufferHook(
  bytes: number,
  logger: { warn(obj: object, msg: string): void },
): ((transport: RTCDtlsTransport) => void) | undefined {
  if (bytes <= 0) return undefined;
  return (transport) => {
    const sizes = setUdpReceiveBuffer(transport, bytes);
    if (sizes === undefined) {
      if (warned.internals) return;
      warned.internals = true;
      logger.warn(
        { bytes },
        'werift ICE internals changed (connection.protocols[].transport.socket): UDP receive buffers keep the system default; check udpReceiveBuffer.ts against this werift version',
      );
      return;
    }
    // Linux reports twice what it granted; it grants at most net.core.rmem_max.
    const granted = Math.min(...sizes) / 2;
    if (sizes.length === 0 || granted >= bytes || warned.capped) return;
    warned.capped = true;
    logger.warn(
      { bytes, granted },
      'the kernel capped the UDP receive buffer below SFU_UDP_RECEIVE_BUFFER: raise net.core.rmem_max (sysctl) to at least that many bytes',
    );
  };
}

/** Each warning once per process: every PeerConnection would say the same. */
const warned = { internals: false, capped: false };
