import { type ErrorCode, type PeerTarget, SfuError } from '@geosfu/common';
import type { HandshakeGate, HandshakeSlot } from './HandshakeGate.js';

/**
 * One participant's turns at the node's HandshakeGate: at most one per PeerConnection
 * (publisher, subscriber), taken before the PC's first negotiation and given back once it
 * connected, failed or closed, or when the participant closes.
 */
export class PeerAdmission {
  readonly #gate: HandshakeGate;
  readonly #abort = new AbortController();
  readonly #slots = new Map<PeerTarget, HandshakeSlot>();
  readonly #admittedAt = new Map<PeerTarget, number>();

  constructor(gate: HandshakeGate) {
    this.#gate = gate;
  }

  /**
   * When this PC's set-up was admitted (epoch ms), 0 while it waits. Its liveness clock
   * starts here: a PeerConnection that waits its turn is not failing to connect.
   */
  admittedAt(target: PeerTarget): number {
    return this.#admittedAt.get(target) ?? 0;
  }

  /**
   * Waits for the PC's turn (once per PC). Past the gate's deadline: SERVICE_BUSY, or with
   * `onBusy`, that is called with the error and the PC waits its turn again. CLOSED on close.
   */
  async admit(target: PeerTarget, onBusy?: (busy: { code: ErrorCode; message: string }) => void) {
    if (this.#admittedAt.has(target)) return;
    let slot: HandshakeSlot | undefined;
    while (!slot) {
      try {
        slot = await this.#gate.acquire(this.#abort.signal);
      } catch (error) {
        if (!onBusy || !(error instanceof SfuError) || error.code !== 'SERVICE_BUSY') throw error;
        onBusy({ code: error.code, message: `${error.message}; still waiting` });
      }
    }
    this.#slots.set(target, slot);
    this.#admittedAt.set(target, Date.now());
  }

  /** The PC connected, failed or closed: its handshake no longer takes a turn. */
  settled(target: PeerTarget): void {
    this.#slots.get(target)?.release();
    this.#slots.delete(target);
  }

  close(): void {
    this.#abort.abort();
    for (const slot of this.#slots.values()) slot.release();
    this.#slots.clear();
  }
}
