/**
 * The camera's simulcast sender: pauses and resumes its layers when the node says which ones
 * someone needs (`publication.layers`, dynacast) by setting `encodings[i].active`.
 *
 * Calls to `setParameters` are serialised: each one must be given the parameters of the
 * latest `getParameters` (its transactionId), so two overlapping calls would make the second
 * fail with InvalidModificationError. Only the latest request matters: requests that arrive
 * while one is being applied replace each other.
 */
import type { SimulcastLayer } from '@geosfu/common/protocol';
import { activeFlags } from './simulcastPlan.js';

export interface LocalLayerState {
  rid: string;
  /** Whether the encoder sends this layer now (`encodings[i].active`). */
  active: boolean;
  /** The size and cap the publish request declared. */
  width: number;
  height: number;
  maxBitrate: number;
}

export class SimulcastSender {
  readonly sender: RTCRtpSender;
  /** What the publish request declared, lowest first. */
  readonly layers: readonly SimulcastLayer[];
  /** The rids the node asked for last, not applied yet (null: nothing waiting). */
  #wanted: readonly string[] | null = null;
  #applying: Promise<void> | null = null;
  #onError: (error: unknown) => void;

  constructor(
    sender: RTCRtpSender,
    layers: readonly SimulcastLayer[],
    onError: (error: unknown) => void,
  ) {
    this.sender = sender;
    this.layers = layers;
    this.#onError = onError;
  }

  /** Each layer with whether the encoder sends it now, lowest first. */
  state(): LocalLayerState[] {
    const encodings = this.sender.getParameters().encodings;
    return this.layers.map((l) => ({
      ...l,
      active: encodings.find((e) => e.rid === l.rid)?.active ?? false,
    }));
  }

  /** Sends the layers `rids` (and always the lowest) and pauses the others. */
  request(rids: readonly string[]): Promise<void> {
    this.#wanted = rids;
    this.#applying ??= this.#drain().finally(() => {
      this.#applying = null;
    });
    return this.#applying;
  }

  async #drain(): Promise<void> {
    while (this.#wanted !== null) {
      const rids = this.#wanted;
      this.#wanted = null;
      try {
        await this.#apply(rids);
      } catch (error) {
        // A sender that closed meanwhile, or a browser that refuses: the layers stay as they
        // were, which still gives every subscriber video (only the uplink saving is lost).
        this.#onError(error);
      }
    }
  }

  async #apply(rids: readonly string[]): Promise<void> {
    const parameters = this.sender.getParameters();
    const flags = activeFlags(parameters.encodings, rids);
    if (parameters.encodings.every((e, i) => e.active === flags[i])) return;
    parameters.encodings.forEach((encoding, i) => {
      encoding.active = flags[i] ?? true;
    });
    await this.sender.setParameters(parameters);
  }
}
