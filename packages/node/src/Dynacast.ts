/**
 * Dynacast for one simulcast publication: which of its layers anyone needs. Each sink (a
 * subscriber's outgoing stream, a relay link's) declares the highest layer it needs; the
 * union over sinks is "every layer up to the highest any sink needs" (a sink switching down
 * steps through the lower ones, so they stay). The layers above are paused at the publisher.
 *
 * - A sink that never declared a demand needs every layer: nothing is paused for a sink that
 *   has not spoken (a relay link, a subscription before its allocator runs).
 * - The lowest layer never pauses: a joiner gets video at once, and the publication stays
 *   alive (its liveness, a relay's) while nobody watches.
 * - Resuming is immediate; pausing waits `pauseDelayMs` and happens only if the layer is still
 *   unneeded then, so that a subscriber flapping between two layers does not toggle the
 *   publisher's encoder (each resume costs a keyframe).
 */
export class Dynacast<Sink extends object> {
  readonly #layerCount: number;
  readonly #pauseDelayMs: number;
  readonly #onChange: (top: number) => void;
  /** Declared demands: the highest layer index a sink needs, -1 for none. */
  readonly #demands = new Map<Sink, number>();
  /** Sinks that have not declared a demand yet. */
  readonly #silent = new Set<Sink>();
  /** The highest layer the publisher is asked to send (every one up to it). */
  #top: number;
  #pending: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: {
    layerCount: number;
    pauseDelayMs: number;
    /** The highest layer to send changed; layers above it are paused. */
    onChange: (top: number) => void;
  }) {
    this.#layerCount = options.layerCount;
    this.#pauseDelayMs = options.pauseDelayMs;
    this.#onChange = options.onChange;
    // The publisher starts with every layer on.
    this.#top = options.layerCount - 1;
    this.#update();
  }

  /** The highest layer the publisher is asked to send. */
  get top(): number {
    return this.#top;
  }

  add(sink: Sink): void {
    if (this.#demands.has(sink)) return;
    this.#silent.add(sink);
    this.#update();
  }

  remove(sink: Sink): void {
    const known = this.#silent.delete(sink) || this.#demands.delete(sink);
    if (known) this.#update();
  }

  /** `layer`: the highest layer index `sink` needs, -1 for none (paused, hidden). */
  set(sink: Sink, layer: number): void {
    this.#silent.delete(sink);
    const clamped = Math.max(-1, Math.min(Math.trunc(layer), this.#layerCount - 1));
    if (this.#demands.get(sink) === clamped) return;
    this.#demands.set(sink, clamped);
    this.#update();
  }

  /** What the sinks need now: every layer up to this index (at least the lowest). */
  #needed(): number {
    if (this.#silent.size > 0) return this.#layerCount - 1;
    let top = 0;
    for (const layer of this.#demands.values()) if (layer > top) top = layer;
    return top;
  }

  #update(): void {
    if (this.#closed) return;
    const needed = this.#needed();
    if (needed >= this.#top) {
      clearTimeout(this.#pending);
      this.#pending = undefined;
      if (needed > this.#top) this.#apply(needed);
      return;
    }
    // Fewer layers needed: pause once they have stayed unneeded for the whole delay.
    if (this.#pending) return;
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      const now = this.#needed();
      if (now < this.#top) this.#apply(now);
    }, this.#pauseDelayMs);
    this.#pending.unref();
  }

  #apply(top: number): void {
    this.#top = top;
    this.#onChange(top);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#pending);
    this.#pending = undefined;
    this.#demands.clear();
    this.#silent.clear();
  }
}
