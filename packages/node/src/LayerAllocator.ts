import type { Logger } from '@geosfu/common';
import {
  allocateLayers,
  type BandwidthBudget,
  UPGRADE_MARGIN,
  type VideoDemand,
} from '@geosfu/media';
import type { PublicationLayer } from './Publication.js';
import type { Subscription } from './Subscription.js';
import { SustainedEstimate } from './SustainedEstimate.js';

/** How often the allocator runs without a change to react to (estimates move by themselves). */
export const ALLOCATE_INTERVAL_MS = 500;
/**
 * A video's target changes at most this often when only the estimate or the layers' bitrates
 * moved (a subscriber's settings and a dead current layer apply at once): each switch costs a
 * keyframe, and an estimate that wobbles must not make the picture flap.
 */
export const RETARGET_MIN_INTERVAL_MS = 1_000;
/**
 * The allocator spends the lowest estimate of this long (`SustainedEstimate`): a drop moves
 * videos down at once, a rise moves them up only once it has lasted (a peak of a wobbling
 * estimate behind a bottleneck is not capacity).
 */
export const UPGRADE_HOLD_MS = 3_000;
/**
 * A probe asks for at most this multiple of the estimate (and at least the next layer up):
 * enough to find a lifted limit in a few probes (each success is followed by the next at
 * once), not so much that a probe's burst behind a bottleneck costs the media a loss.
 */
export const PROBE_REACH = 2;
/**
 * After the budget moved a video down, it goes up again no sooner than this, doubled for each
 * further move down within BACKOFF_RESET_MS, up to MAX_BACKOFF_MS (an estimate that sits just
 * above what a link carries moves a video up, the larger layer overflows the link, and the
 * video comes down again: each round costs two keyframes and a freeze). A probe that proves
 * the estimate ends the backoff: that is capacity, not a wobble.
 */
export const MIN_BACKOFF_MS = 4_000;
export const MAX_BACKOFF_MS = 16_000;
const BACKOFF_RESET_MS = 30_000;

/**
 * Chooses, for one subscriber, the layer of each simulcast video it receives: the highest that
 * fits its bandwidth budget and the size it renders (`allocateLayers`, with its upgrade margin),
 * every ALLOCATE_INTERVAL_MS and soon after any change (settings, a publication's layers, a
 * subscription added or removed). Single-layer videos are only paused when hidden; they and
 * audio are paid for first, out of the estimate, at their measured rate.
 *
 * A layer is available when it arrives (`active`) or is paused by dynacast (`paused`: it
 * resumes when demanded); it costs its measured rate when active, else its declared cap. A
 * video whose choice is a paused layer keeps its current layer, or, when it has none that
 * still arrives, gets the best arriving layer below until the paused one is back.
 *
 * The estimate it spends is the lowest of the last UPGRADE_HOLD_MS (see SustainedEstimate).
 */
export class LayerAllocator {
  readonly #budget: BandwidthBudget;
  readonly #logger: Logger;
  readonly #subscriptions: () => Iterable<Subscription>;
  readonly #timer: NodeJS.Timeout;
  readonly #sustained = new SustainedEstimate(UPGRADE_HOLD_MS);
  #provenAt: number | undefined;
  /** When the budget last moved each video down, and how long it stays down since. */
  readonly #backoff = new WeakMap<Subscription, { downAt: number; ms: number }>();
  #scheduled = false;
  #closed = false;

  constructor(options: {
    budget: BandwidthBudget;
    /** The subscriber's subscriptions, read on every run. */
    subscriptions: () => Iterable<Subscription>;
    logger: Logger;
  }) {
    this.#budget = options.budget;
    this.#subscriptions = options.subscriptions;
    this.#logger = options.logger;
    this.#timer = setInterval(() => this.#run(), ALLOCATE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Something changed: run soon (changes of one moment coalesce into one run). */
  update(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#run();
    });
  }

  #run(): void {
    if (this.#closed) return;
    try {
      this.#allocate(performance.now());
    } catch (error) {
      // A bug here must not stop the timer of every later run.
      this.#logger.error({ err: error }, 'layer allocation failed');
    }
  }

  #allocate(now: number): void {
    const simulcast: Subscription[] = [];
    let fixedBps = 0;
    for (const s of this.#subscriptions()) {
      if (s.closed) continue;
      const publication = s.publication;
      if (publication.kind === 'video' && publication.simulcast) {
        simulcast.push(s);
        continue;
      }
      if (publication.kind === 'video') {
        const target = renderWidth(s) > 0 ? 0 : -1;
        if (target !== s.targetLayer || s.settingsChanged) s.retarget(target, target, now);
        s.settingsChanged = false;
      }
      if (s.targetLayer >= 0) fixedBps += publication.layers[0]?.bitrateBps ?? 0;
    }
    if (simulcast.length === 0) return;
    const latest = this.#budget.estimateBps;
    // A probe measured the path: its rate is capacity, not a peak, and needs no hold.
    const proven = this.#budget.provenAt;
    if (latest === undefined || proven !== this.#provenAt) this.#sustained.reset();
    this.#provenAt = proven;
    const estimate = latest === undefined ? undefined : this.#sustained.update(now, latest);
    const budget =
      estimate === undefined ? Number.POSITIVE_INFINITY : Math.max(0, estimate - fixedBps);
    // Moving up spends only what the path has shown it carries (see BandwidthBudget.shownBps):
    // behind a 600 kbit/s link, an estimate grown to 650-730 kbit/s while the node sent 450
    // moved a video up, its keyframe overflowed the link and every video there froze. A probe
    // finds out first whether more fits.
    const shown = this.#budget.shownBps;
    const upgradeBudget =
      shown === undefined ? budget : Math.min(budget, Math.max(0, shown - fixedBps));
    const demands = simulcast.map((s): VideoDemand => {
      const pin = s.settings?.pin;
      const current = s.targetLayer;
      const backoff = this.#backoff.get(s);
      const held =
        backoff !== undefined &&
        current >= 0 &&
        now < backoff.downAt + backoff.ms &&
        !(proven !== undefined && proven > backoff.downAt);
      return {
        ...(held ? { ceiling: current } : {}),
        layers: s.publication.layers.map((l) => ({
          width: l.width,
          bitrateBps: costOf(l),
          active: l.active,
          paused: l.paused,
        })),
        renderWidth: renderWidth(s),
        ...(pin === 'low' || pin === 'high' ? { pin } : {}),
        ...(current >= 0 ? { current } : {}),
      };
    });
    const targets = allocateLayers(demands, budget, upgradeBudget);
    // Dynacast's demand: what each video would get if every declared layer arrived and the
    // budget were PROBE_REACH times the estimate (no backoff ceiling). A layer the publisher
    // was asked for that does not arrive yet must stay demanded: Chrome starts a resumed layer
    // only once its send estimate covers it (seconds), and a demand that followed arrival
    // dropped it, so dynacast paused it again 3 s later, before it ever came. A layer within a
    // probe's reach stays demanded too: the estimate toward a subscriber wobbles and grows for
    // seconds (a new one starts low, a busy receiver's feedback reads as a queue), and a demand
    // that followed it paused the top layer a large viewer was about to get; a subscriber
    // behind a link that carries less than half of a layer does not keep it on.
    const wanted = allocateLayers(
      demands.map(({ ceiling: _, ...d }) => ({
        ...d,
        layers: d.layers.map((l) => ({ ...l, active: true })),
      })),
      budget * PROBE_REACH,
    );
    // What each video would get with no budget limit (and no backoff): its cap by size and pin.
    const caps =
      estimate === undefined
        ? targets
        : allocateLayers(
            demands.map(({ ceiling: _, ...d }) => d),
            Number.POSITIVE_INFINITY,
          );
    let spent = 0;
    for (const [i, s] of simulcast.entries()) {
      const layers = s.publication.layers;
      const chosen = targets[i] ?? -1;
      if (chosen >= 0) spent += costOf(layers[chosen]);
      if (chosen < 0 && renderWidth(s) > 0) {
        // Visible, but no layer arrives (the publisher stalled or has not started): nothing
        // to switch to; the stream keeps its target and resumes with the media.
        s.settingsChanged = false;
        continue;
      }
      const layer = standIn(layers, chosen, s.currentLayer);
      const settingsChanged = s.settingsChanged;
      const urgent =
        settingsChanged ||
        layer === -1 ||
        (s.currentLayer >= 0 && !layers[s.currentLayer]?.active) ||
        now - s.retargetedAt >= RETARGET_MIN_INTERVAL_MS;
      s.settingsChanged = false;
      if (layer !== s.targetLayer && !urgent) continue;
      if (!settingsChanged && chosen >= 0 && chosen < s.targetLayer && chosen < (caps[i] ?? -1))
        this.#backedOff(s, now);
      s.retarget(layer, chosen < 0 ? chosen : Math.max(chosen, wanted[i] ?? chosen), now);
    }
    if (estimate === undefined) return;
    // A video held below its cap by the budget (or by what the path has shown): let the
    // estimator find out whether more would fit: at least the cheapest step up, at most every
    // video at its cap (one probe per run), and no more than PROBE_REACH times the estimate.
    // A step is probed with the margin an upgrade needs (UPGRADE_MARGIN on what it adds): a
    // probe for the bare step "proved" a rate the upgrade still did not fit in, and the next
    // probe was skipped as already known. After a shaper was lifted, a video then stayed on h
    // with f 8 kbit/s out of reach and no probe for 8 s (until the test's bound ran out).
    let probe = Number.POSITIVE_INFINITY;
    let fullExtra = 0;
    for (const [i, s] of simulcast.entries()) {
      const chosen = targets[i] ?? -1;
      const cap = caps[i] ?? -1;
      const layers = s.publication.layers;
      if (chosen < 0 || chosen >= cap) continue;
      fullExtra += costOf(layers[cap]) - costOf(layers[chosen]);
      let next = chosen + 1;
      while (next < cap && !(layers[next]?.active || layers[next]?.paused)) next++;
      const step = costOf(layers[next]) - costOf(layers[chosen]);
      if (step > 0 && step < probe) probe = step;
    }
    if (Number.isFinite(probe)) {
      const step = fixedBps + spent + probe * UPGRADE_MARGIN;
      const full = fixedBps + spent + Math.max(probe, fullExtra) * UPGRADE_MARGIN;
      this.#budget.probe(Math.min(full, Math.max(step, PROBE_REACH * (latest ?? estimate))));
    }
  }

  /** The budget moved `s` down: it stays down for a while, longer each time it flaps. */
  #backedOff(s: Subscription, now: number): void {
    const last = this.#backoff.get(s);
    const ms =
      last && now - last.downAt < BACKOFF_RESET_MS
        ? Math.min(MAX_BACKOFF_MS, 2 * last.ms)
        : MIN_BACKOFF_MS;
    this.#backoff.set(s, { downAt: now, ms });
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}

/**
 * A layer that arrives costs at least this share of its declared cap. An encoder that sends a
 * layer far below its cap (ramping up after dynacast resumed it, or held by its own estimate)
 * can reach the cap within a second: a 1280 px layer measured at 270 kbit/s looked like it fit
 * a 600 kbit/s link, the subscriber was moved up to it, and its next seconds overflowed the
 * link (every video there froze for 4.9 s).
 */
const MIN_COST_SHARE = 0.5;

/**
 * What a layer costs: its measured rate while it arrives (at least MIN_COST_SHARE of its cap),
 * its declared cap while it is paused (or before its first measurement). A layer dynacast has
 * paused still arrives for a moment at its old rate: it costs its cap all the same, or the
 * demand it lost came back at once (behind a 400 kbit/s tbf, twice an estimate of 540 kbit/s
 * covered f's last 800 kbit/s, and f was resumed 550 ms after its pause). Paused, a layer
 * comes back only for a budget that carries it whole; arriving, it stays for half: the gap is
 * the hysteresis that keeps the publisher's encoder from toggling.
 */
function costOf(layer: PublicationLayer | undefined): number {
  if (!layer) return 0;
  if (!layer.active || layer.paused || layer.bitrateBps <= 0) return layer.maxBitrate;
  return Math.max(layer.bitrateBps, MIN_COST_SHARE * layer.maxBitrate);
}

/**
 * The width the subscriber renders the video at; 0 when hidden. Before any settings, the top
 * layer's width (visible, full size).
 */
function renderWidth(s: Subscription): number {
  const settings = s.settings;
  const layers = s.publication.layers;
  const top = layers[layers.length - 1];
  if (!settings) return Math.max(1, top?.width ?? 1);
  if (!settings.visible) return 0;
  if (settings.width > 0) return settings.width;
  if (settings.height <= 0) return 0;
  // Only a height: the width it means at the top layer's aspect ratio.
  return top && top.height > 0 ? Math.round((settings.height * top.width) / top.height) : 1;
}

/**
 * The layer to send for the chosen one: itself when it arrives; when it is paused at the
 * publisher (resuming on demand), the current layer while that still arrives (the stream keeps
 * it until the chosen one's keyframe), else the best arriving layer below.
 */
function standIn(layers: readonly PublicationLayer[], chosen: number, current: number): number {
  if (chosen < 0 || layers[chosen]?.active) return chosen;
  if (current >= 0 && layers[current]?.active) return chosen;
  for (let i = chosen - 1; i >= 0; i--) if (layers[i]?.active) return i;
  return chosen;
}
