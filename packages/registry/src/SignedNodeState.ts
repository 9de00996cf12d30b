import { ClusterStateCodec, MAX_CLOCK_SKEW_MS, type StateOpenResult } from '@geosfu/common';
import { z } from 'zod';
import type { RegistryKeys } from './keys.js';
import { freezeRecord, NodeRecord } from './NodeRecord.js';

/** A membership message on the nodes channel. */
const MembershipSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('up'), node: NodeRecord }),
  z.object({ type: z.literal('update'), node: NodeRecord }),
  z.object({ type: z.literal('down'), id: z.string().min(1).max(64) }),
]);
export type MembershipMessage =
  | { type: 'up' | 'update'; node: NodeRecord }
  | { type: 'down'; id: string };

/**
 * The signed form of the registry in Redis: node records at `sfu:node:<id>` (signed for
 * their key, and no older than the TTL plus the clock skew: a copy of a record cannot be
 * written back once it is out of date) and membership messages on `sfu:nodes` (signed for
 * the channel, fresh, each once). What does not verify is ignored by routing, the directory
 * and the watchers. See ClusterStateCodec.
 */
export class SignedNodeState {
  readonly #codec: ClusterStateCodec;
  readonly #keys: RegistryKeys;
  readonly #maxRecordAgeMs: number;

  constructor(secret: string, keys: RegistryKeys, ttlMs: number) {
    this.#codec = new ClusterStateCodec(secret);
    this.#keys = keys;
    this.#maxRecordAgeMs = ttlMs + MAX_CLOCK_SKEW_MS;
  }

  sealRecord(record: NodeRecord): string {
    return this.#codec.seal('node-record', this.#keys.node(record.id), record);
  }

  sealMessage(message: MembershipMessage): string {
    return this.#codec.seal('node-message', this.#keys.nodesChannel, message);
  }

  /** A record read from `key`; a valid one names the node of its key and is frozen. */
  openRecord(key: string, raw: string): StateOpenResult<NodeRecord> {
    const result = this.#codec.open(raw, {
      kind: 'node-record',
      context: key,
      schema: NodeRecord,
      freshness: { maxAgeMs: this.#maxRecordAgeMs },
    });
    if (!result.ok) return result;
    if (this.#keys.nodeIdOf(key) !== result.value.id) {
      // Signed for this key, yet naming another node: a bug of a writer, not a forger.
      return { ok: false, reason: 'invalid', detail: `the record says id ${result.value.id}` };
    }
    return { ...result, value: freezeRecord(result.value) };
  }

  openMessage(raw: string): StateOpenResult<MembershipMessage> {
    const result = this.#codec.open(raw, {
      kind: 'node-message',
      context: this.#keys.nodesChannel,
      schema: MembershipSchema,
      freshness: 'message',
    });
    if (!result.ok || result.value.type === 'down') return result;
    return { ...result, value: { ...result.value, node: freezeRecord(result.value.node) } };
  }
}
