import { randomBytes } from 'node:crypto';
import { InvalidStateError, type Logger, SfuError } from '@geosfu/common';
import { BaseRelayBus } from './BaseRelayBus.js';

/**
 * The "Redis" of MemoryRelayBus: node id -> bus, within one process. Each hub has its own
 * random secret that its buses sign with, so that they go through exactly the code of
 * RedisRelayBus (sealing, opening, replay checks), only without the network.
 */
export class MemoryRelayHub {
  readonly secret = randomBytes(32).toString('hex');
  /** Node id -> the bus listening as that node, and how to hand it a payload. */
  readonly #listeners = new Map<string, { bus: MemoryRelayBus; deliver: (p: string) => void }>();
  readonly #taps = new Set<(to: string, payload: string) => void>();

  /** @internal Called by MemoryRelayBus.start(). */
  attach(bus: MemoryRelayBus, deliver: (payload: string) => void): void {
    const existing = this.#listeners.get(bus.nodeId);
    if (existing !== undefined && existing.bus !== bus) {
      throw new SfuError(
        'CONFIG_INVALID',
        `node ${bus.nodeId} already listens on this hub: give every node its own id`,
      );
    }
    this.#listeners.set(bus.nodeId, { bus, deliver });
  }

  /** @internal Called by MemoryRelayBus.close(). */
  detach(bus: MemoryRelayBus): void {
    if (this.#listeners.get(bus.nodeId)?.bus === bus) this.#listeners.delete(bus.nodeId);
  }

  /**
   * Puts a payload on node `to`'s channel, as PUBLISH does: delivered later (never from
   * inside the call) if the node still listens then; returns how many listen now.
   */
  publish(to: string, payload: string): number {
    for (const tap of this.#taps) tap(to, payload);
    const listener = this.#listeners.get(to);
    if (listener === undefined) return 0;
    setImmediate(() => {
      // The bus may have closed meanwhile; then the payload is lost, as on Redis.
      if (this.#listeners.get(to) === listener) listener.deliver(payload);
    });
    return 1;
  }

  /** Sees every payload published on the hub (tests: count, capture, replay). */
  tap(listener: (to: string, payload: string) => void): () => void {
    this.#taps.add(listener);
    return () => {
      this.#taps.delete(listener);
    };
  }
}

export interface MemoryRelayBusOptions {
  hub: MemoryRelayHub;
  nodeId: string;
  /** Default: the hub's secret. Tests give another to play a node with the wrong one. */
  secret?: string;
  logger?: Logger;
}

/** A RelayBus within one process (single-node mode has no peers; tests have several). */
export class MemoryRelayBus extends BaseRelayBus {
  readonly kind = 'memory';
  readonly hub: MemoryRelayHub;
  #attached = false;

  constructor(options: MemoryRelayBusOptions) {
    super({
      nodeId: options.nodeId,
      secret: options.secret ?? options.hub.secret,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    this.hub = options.hub;
  }

  get connected(): boolean {
    return this.#attached;
  }

  protected async openTransport(): Promise<void> {
    this.hub.attach(this, (payload) => this.receive(payload));
    this.#attached = true;
  }

  protected async transmit(to: string, payload: string): Promise<number> {
    if (!this.#attached) throw new InvalidStateError('the relay bus is closed');
    return this.hub.publish(to, payload);
  }

  protected async closeTransport(): Promise<void> {
    this.#attached = false;
    this.hub.detach(this);
  }
}
