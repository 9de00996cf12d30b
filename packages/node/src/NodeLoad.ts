import { availableParallelism } from 'node:os';
import type { NodeLoad as Load } from '@geosfu/registry';

/**
 * The load a node reports in its registry record at every heartbeat: participants, tracks,
 * the CPU share of the machine and the forwarded bitrate, both over the time since the
 * previous reading.
 */
export class NodeLoad {
  #mark = { usage: process.cpuUsage(), at: performance.now(), bytesOut: 0 };

  /**
   * @param participants sessions on the node now
   * @param publishedTracks tracks published on the node now
   * @param bytesOut every byte forwarded to subscribers so far (a growing total)
   */
  read(participants: number, publishedTracks: number, bytesOut: number): Load {
    const now = performance.now();
    const usage = process.cpuUsage();
    const elapsedUs = Math.max(1, (now - this.#mark.at) * 1000);
    const cpuUs = usage.user - this.#mark.usage.user + usage.system - this.#mark.usage.system;
    const bitrate = Math.max(0, ((bytesOut - this.#mark.bytesOut) * 8) / (elapsedUs / 1e6));
    this.#mark = { usage, at: now, bytesOut };
    return {
      participants,
      publishedTracks,
      cpu: Math.min(1, cpuUs / elapsedUs / Math.max(1, availableParallelism())),
      forwardedBitrate: Math.round(bitrate),
    };
  }
}
