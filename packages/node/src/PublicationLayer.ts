/**
 * One simulcast layer of a publication as allocators read it (lowest first; a publication that
 * is not simulcast has exactly one, rid ''). See the shared contract in docs/ARCHITECTURE.md
 * ("Simulcast ingest and dynacast").
 */
export interface PublicationLayer {
  readonly rid: string;
  /** The size the publisher declared for it; 0 when unknown (not simulcast). */
  readonly width: number;
  readonly height: number;
  /** The declared bitrate cap, bits per second; 0 when unknown. */
  readonly maxBitrate: number;
  /** Measured over the last ~2 s (LAYER_BITRATE_WINDOW_MS). */
  readonly bitrateBps: number;
  /** Media arrived within the last ~1 s (LAYER_INACTIVE_AFTER_MS). */
  readonly active: boolean;
  /** Paused at the publisher by dynacast: nobody needs it; it resumes when someone does. */
  readonly paused: boolean;
}

/** How often a publication re-reads its layers' activity and bitrate. */
export const LAYER_TICK_MS = 500;
/** The window of `bitrateBps`. */
export const LAYER_BITRATE_WINDOW_MS = 2_000;
/** A layer without media for this long is inactive (two ticks). */
export const LAYER_INACTIVE_AFTER_MS = 1_000;

const WINDOW_TICKS = LAYER_BITRATE_WINDOW_MS / LAYER_TICK_MS;
const INACTIVE_TICKS = LAYER_INACTIVE_AFTER_MS / LAYER_TICK_MS;

/**
 * The mutable state behind a `PublicationLayer`, owned by its publication. The packet path
 * only adds to two numbers (`count`); `tick` turns them into the bitrate and activity on a
 * timer, so that no packet reads the clock.
 */
export class LayerState implements PublicationLayer {
  readonly rid: string;
  readonly width: number;
  readonly height: number;
  readonly maxBitrate: number;
  bitrateBps = 0;
  active = false;
  paused = false;
  /** Packets and keyframes received on this layer since the publication started. */
  packets = 0;
  keyframes = 0;
  #bytesThisTick = 0;
  #packetsThisTick = 0;
  /** Payload bytes per tick, the last WINDOW_TICKS ticks (a ring). */
  readonly #window = new Array<number>(WINDOW_TICKS).fill(0);
  #windowAt = 0;
  #ticks = 0;
  /**
   * Ticks since the last packet. A layer that never had one starts quiet: from 0 its first
   * tick made it active for 500 ms without a packet.
   */
  #quietTicks = INACTIVE_TICKS;

  constructor(layer: { rid: string; width: number; height: number; maxBitrate: number }) {
    this.rid = layer.rid;
    this.width = layer.width;
    this.height = layer.height;
    this.maxBitrate = layer.maxBitrate;
  }

  /** Hot path: one packet of `payloadBytes`. */
  count(payloadBytes: number): void {
    this.packets++;
    this.#packetsThisTick++;
    this.#bytesThisTick += payloadBytes;
  }

  /** Every LAYER_TICK_MS: updates the bitrate and activity; true when `active` changed. */
  tick(): boolean {
    this.#window[this.#windowAt] = this.#bytesThisTick;
    this.#windowAt = (this.#windowAt + 1) % WINDOW_TICKS;
    this.#ticks = Math.min(this.#ticks + 1, WINDOW_TICKS);
    let bytes = 0;
    for (const b of this.#window) bytes += b;
    this.bitrateBps = Math.round((bytes * 8 * 1000) / (this.#ticks * LAYER_TICK_MS));
    this.#quietTicks = this.#packetsThisTick > 0 ? 0 : this.#quietTicks + 1;
    this.#bytesThisTick = 0;
    this.#packetsThisTick = 0;
    const active = this.#quietTicks < INACTIVE_TICKS;
    if (active === this.active) return false;
    this.active = active;
    return true;
  }
}
