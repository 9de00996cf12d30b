/**
 * Which simulcast layer of each video a subscriber gets, from its bandwidth estimate and what
 * it renders (LiveKit's StreamAllocator does the same job): the estimate is shared by every
 * video the subscriber receives, each video is capped at the layer its rendered size needs,
 * and the budget goes round-robin from the lowest layer up, so that a tight link gives every
 * video a picture before any gets a sharp one.
 */

/** One layer of a simulcast video, lowest first. */
export interface LayerOption {
  /** Width it is encoded at, px. */
  readonly width: number;
  /** What it costs, bits/s (measured while it arrives; a paused layer's declared cap). */
  readonly bitrateBps: number;
  /** Media of this layer arrived recently: it can be switched to. */
  readonly active: boolean;
  /**
   * Paused at the publisher (dynacast) and resumed when a subscriber needs it: it can be
   * chosen within the video's cap, but resuming it costs the publisher's uplink, so it is
   * never the stand-in of a lower layer that does not arrive (a stall of the lowest layer
   * must not switch the publisher's top layer on for a thumbnail).
   */
  readonly paused?: boolean;
}

export interface VideoDemand {
  /** The video's layers, lowest first. */
  readonly layers: readonly LayerOption[];
  /** The width the subscriber renders it at, px; 0: hidden (paused, gets nothing). */
  readonly renderWidth: number;
  /** A user's choice: the lowest layer, the highest one whatever the size, or automatic. */
  readonly pin?: 'low' | 'high';
  /** The layer it gets now, if any: upgrades need a margin over it, downgrades do not. */
  readonly current?: number;
  /** The highest layer it may get for now, whatever the budget (an upgrade backing off). */
  readonly ceiling?: number;
}

/** How much more than a layer costs the budget must have before a video is moved up to it. */
export const UPGRADE_MARGIN = 1.15;

/**
 * The layer index each video gets, or -1 for none (hidden, or no layer to get). Every visible
 * video gets at least its floor, even over budget: a frozen tile is worse than a soft one, and
 * the estimate itself drops when the link is overused. The floor is its lowest available
 * layer (arriving or paused) within its size cap, else its lowest arriving layer above it.
 * A video keeps (or returns to) its current layer within `budgetBps`; it moves above it only
 * within `upgradeBudgetBps` (what the path has shown it carries; the budget by default).
 */
export function allocateLayers(
  videos: readonly VideoDemand[],
  budgetBps: number,
  upgradeBudgetBps = budgetBps,
): number[] {
  const floors = videos.map(floorOf);
  const caps = videos.map((v, i) => capOf(v, floors[i] ?? -1));
  const targets = videos.map((_, i) => (caps[i] === -1 ? -1 : (floors[i] ?? -1)));
  let spent = 0;
  for (const [i, v] of videos.entries()) {
    const t = targets[i] ?? -1;
    if (t >= 0) spent += v.layers[t]?.bitrateBps ?? 0;
  }
  // Round-robin upgrades: each pass lifts every video that can go one layer up and still fit.
  for (let moved = true; moved; ) {
    moved = false;
    for (const [i, v] of videos.entries()) {
      const t = targets[i] ?? -1;
      const cap = caps[i] ?? -1;
      if (t < 0 || t >= cap) continue;
      const next = nextActive(v.layers, t, cap);
      if (next < 0) continue;
      const extra = (v.layers[next]?.bitrateBps ?? 0) - (v.layers[t]?.bitrateBps ?? 0);
      // Staying on (or returning to) the current layer needs no margin: no flapping around it.
      // Moving up spends only what has been shown to fit (`upgradeBudgetBps`).
      const staying = v.current !== undefined && next <= v.current;
      const margin = staying ? 1 : UPGRADE_MARGIN;
      if (spent + extra * margin > (staying ? budgetBps : upgradeBudgetBps)) continue;
      targets[i] = next;
      spent += extra;
      moved = true;
    }
  }
  return targets;
}

/** The highest layer a video may get (by its rendered size, or its pin), at least its floor. */
function capOf(v: VideoDemand, floor: number): number {
  if (floor < 0) return -1;
  const cap = sizeCapOf(v);
  if (v.pin === 'low') return floor;
  return v.ceiling === undefined ? Math.max(floor, cap) : Math.max(floor, Math.min(cap, v.ceiling));
}

/** The layer the rendered size needs (or the pin's): -1 when hidden. */
function sizeCapOf(v: VideoDemand): number {
  if (v.renderWidth <= 0) return -1;
  const top = v.layers.length - 1;
  if (v.pin === 'high') return top;
  // The smallest layer at least about as wide as the tile (10 % softer is not visible).
  const fits = v.layers.findIndex((l) => l.width >= v.renderWidth * 0.9);
  return fits < 0 ? top : fits;
}

/** The least a visible video gets (see allocateLayers); -1 when hidden or nothing arrives. */
function floorOf(v: VideoDemand): number {
  const cap = sizeCapOf(v);
  if (cap < 0) return -1;
  for (let i = 0; i <= cap; i++) if (available(v.layers[i])) return i;
  for (let i = cap + 1; i < v.layers.length; i++) if (v.layers[i]?.active) return i;
  return -1;
}

function available(layer: LayerOption | undefined): boolean {
  return layer !== undefined && (layer.active || layer.paused === true);
}

function nextActive(layers: readonly LayerOption[], from: number, cap: number): number {
  for (let i = from + 1; i <= cap; i++) if (available(layers[i])) return i;
  return -1;
}
