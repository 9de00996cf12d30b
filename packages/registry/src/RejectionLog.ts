import {
  type ClusterRejectKind,
  type ClusterRejectReason,
  type Logger,
  ThrottledWarn,
} from '@geosfu/common';

/**
 * Reports cluster state that did not verify: every one is counted (the owner's `rejected`
 * event, for `sfu_cluster_messages_rejected_total`), and logged at warn at most once per
 * kind and reason every 10 s, so that whoever floods Redis with forgeries cannot flood the
 * logs too.
 */
export class RejectionLog {
  readonly #warn: ThrottledWarn;
  readonly #count: (kind: ClusterRejectKind, reason: ClusterRejectReason) => void;

  constructor(
    logger: Logger,
    count: (kind: ClusterRejectKind, reason: ClusterRejectReason) => void,
  ) {
    this.#warn = new ThrottledWarn(logger, 'rejected cluster state that does not verify');
    this.#count = count;
  }

  report(
    kind: ClusterRejectKind,
    reason: ClusterRejectReason,
    detail: string,
    context: Record<string, unknown> = {},
  ): void {
    this.#count(kind, reason);
    this.#warn.log(`${kind}/${reason}`, { kind, reason, detail, ...context });
  }
}
