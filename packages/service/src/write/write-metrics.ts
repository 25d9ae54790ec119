import { Counter, type Registry } from 'prom-client';

/** Metrics of the write API. */
export interface WriteMetrics {
  /** Ops applied (duplicates of already applied transactions are not counted again). */
  readonly opsApplied: Counter;
  /** Ops not applied, by code (FERRY_S6001…S6009; S6006 for the other ops of a rejected transaction). */
  readonly opsRejected: Counter<'code'>;
  /** Client transactions answered, by status (applied, rejected, retry, duplicate). */
  readonly transactions: Counter<'status'>;
}

/** Registers the write API's metrics on a registry (e.g. `FerryMetrics.registry`). */
export function createWriteMetrics(registry: Registry, prefix = 'ferry_'): WriteMetrics {
  const registers = [registry];
  return {
    opsApplied: new Counter({ name: `${prefix}write_ops_applied_total`, help: 'Write API ops applied', registers }),
    opsRejected: new Counter({
      name: `${prefix}write_ops_rejected_total`,
      help: 'Write API ops not applied, by code',
      labelNames: ['code'] as const,
      registers,
    }),
    transactions: new Counter({
      name: `${prefix}write_transactions_total`,
      help: 'Write API client transactions answered, by status',
      labelNames: ['status'] as const,
      registers,
    }),
  };
}
