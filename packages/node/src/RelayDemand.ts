/**
 * The layer demand of a relayed simulcast publication: which of its layers this node's sinks
 * need, exactly. The node that has the publisher carries those layers on the relay link and
 * no others (its `layers` message), so the set is exact, unlike the publisher's dynacast
 * (`Dynacast`: every layer up to the highest needed, the lowest always): a relay is the
 * expensive hop (another region), and an outgoing stream switches straight to its target's
 * keyframe, never through the layers between.
 *
 * - A sink that never declared a demand needs the lowest layer: an outgoing stream starts on
 *   it until its allocator picks (which sees the other layers as paused, so available).
 *   Not every layer, as `Dynacast` assumes for a publisher: each subscriber joining here
 *   would pull the top layer across the link for the whole linger.
 * - Nothing is needed before a sink says so: a relayed track starts with every layer off.
 * - Adding a layer is immediate; dropping one waits `lingerMs` and happens only if the layer
 *   is still unneeded then: a subscriber that switches away keeps receiving its old layer
 *   until the new one's keyframe arrived, and one that flaps does not toggle the link (each
 *   resume costs the publisher a keyframe).
 */
export class RelayDemand<Sink extends object> {
  readonly #layerCount: number;
  readonly #lingerMs: number;
  readonly #onChange: (needed: readonly boolean[]) => void;
  /** Declared demands: the layer indexes a sink needs (sorted, distinct), none: empty. */
  readonly #demands = new Map<Sink, readonly number[]>();
  readonly #silent = new Set<Sink>();
  /** The layers asked for now, by index. */
  #asked: boolean[];
  /** When each asked layer stopped being needed (performance.now()); undefined while needed. */
  readonly #unneededSince: (number | undefined)[];
  #pending: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: {
    layerCount: number;
    lingerMs: number;
    /** The layers to carry changed (true: needed). */
    onChange: (needed: readonly boolean[]) => void;
  }) {
    this.#layerCount = options.layerCount;
    this.#lingerMs = options.lingerMs;
    this.#onChange = options.onChange;
    this.#asked = new Array<boolean>(options.layerCount).fill(false);
    this.#unneededSince = new Array<number | undefined>(options.layerCount).fill(undefined);
  }

  /** The layers asked for now, lowest first (true: needed). */
  get asked(): readonly boolean[] {
    return this.#asked;
  }

  add(sink: Sink): void {
    if (this.#demands.has(sink) || this.#silent.has(sink)) return;
    this.#silent.add(sink);
    this.#update();
  }

  remove(sink: Sink): void {
    const known = this.#silent.delete(sink) || this.#demands.delete(sink);
    if (known) this.#update();
  }

  /**
   * `layer`: the layer index `sink` needs, -1 for none; `also`: more it needs meanwhile (the
   * layer its stream sends now, until the wanted one's keyframe; the one it stands in with
   * while the wanted one does not arrive). Negative indexes are ignored.
   */
  set(sink: Sink, layer: number, also: readonly number[] = []): void {
    this.#silent.delete(sink);
    const layers = [...new Set([layer, ...also])]
      .map((l) => Math.min(Math.trunc(l), this.#layerCount - 1))
      .filter((l) => l >= 0)
      .sort((a, b) => a - b);
    if (this.#demands.get(sink)?.join() === layers.join()) return;
    this.#demands.set(sink, layers);
    this.#update();
  }

  #needed(): boolean[] {
    const needed = new Array<boolean>(this.#layerCount).fill(false);
    if (this.#silent.size > 0) needed[0] = true;
    for (const layers of this.#demands.values()) for (const layer of layers) needed[layer] = true;
    return needed;
  }

  #update(): void {
    if (this.#closed) return;
    const needed = this.#needed();
    const now = performance.now();
    let added = false;
    for (let i = 0; i < this.#layerCount; i++) {
      if (needed[i]) {
        this.#unneededSince[i] = undefined;
        if (!this.#asked[i]) added = true;
      } else if (this.#asked[i]) this.#unneededSince[i] ??= now;
    }
    // New layers at once; the ones to drop stay asked for until their own linger is over.
    if (added) this.#apply(this.#asked.map((a, i) => a || (needed[i] ?? false)));
    this.#schedule(now);
  }

  /** Drops the layers unneeded for the whole linger; waits for the next one that will be. */
  #schedule(now: number): void {
    clearTimeout(this.#pending);
    this.#pending = undefined;
    let next = Number.POSITIVE_INFINITY;
    for (const since of this.#unneededSince) if (since !== undefined) next = Math.min(next, since);
    if (next === Number.POSITIVE_INFINITY) return;
    this.#pending = setTimeout(
      () => {
        this.#pending = undefined;
        if (this.#closed) return;
        const at = performance.now();
        const over = this.#unneededSince.map((s) => s !== undefined && at - s >= this.#lingerMs);
        if (over.some(Boolean)) {
          for (const [i, o] of over.entries()) if (o) this.#unneededSince[i] = undefined;
          this.#apply(this.#asked.map((a, i) => a && !over[i]));
        }
        this.#schedule(at);
      },
      Math.max(0, next + this.#lingerMs - now),
    );
    this.#pending.unref();
  }

  #apply(asked: boolean[]): void {
    this.#asked = asked;
    this.#onChange(asked);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#pending);
    this.#pending = undefined;
    this.#demands.clear();
    this.#silent.clear();
  }
}
