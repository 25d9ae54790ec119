/**
 * The field-level merge rule: what happens to one column of one row when a
 * write arrives, given the stamp stored for that field.
 *
 * - A writer that saw the stored value (its `old` equals it) wrote after it:
 *   its value applies, whatever the clocks say, and the field's stamp moves
 *   past the stored one (the service "receives" the stored stamp, as an HLC
 *   does), so stamps only grow.
 * - A writer that did not see it (its `old` differs) wrote concurrently: the
 *   policy decides. Clock-ordered LWW keeps the value with the higher stamp
 *   (ties broken by node, deterministically) and records the other as a
 *   conflict; `server_wins` keeps the stored value; `client_wins` takes the
 *   arriving one; a merge function computes the value.
 * - A writer that did not say what it saw (no `old`: PowerSync clients
 *   without previous values, a PUT over an existing row) is ordered by
 *   clock alone; a value that loses is recorded, one that wins is not (it
 *   may well have seen what it replaced).
 *
 * Stamps are handled in their `encodeHlc` text form, whose plain string
 * order is the clock order. They are first bounded by the service's clock:
 * one further ahead than `maxSkewMs` counts as `now + maxSkewMs`, so a
 * client whose wall clock runs hours fast wins only against writes made
 * within that bound.
 */
import { decodeHlc, encodeHlc, type Hlc } from '@ferry/protocol';
import type { ConflictPolicy } from './write-rules.js';

/** A field's stored stamp (`encodeHlc` text) and who wrote it. `hlc` null: never stamped (seeded, or written before tracking). */
export interface FieldStamp {
  hlc: string | null;
  user: string | null;
}

export type FieldOutcome =
  /** Write the incoming value; `lost` = the stored value was overwritten by a concurrent write (record it). */
  | { kind: 'apply'; stamp: string; lost: boolean }
  /** Keep the stored value; the incoming one is recorded as lost when `record`. */
  | { kind: 'keep'; record: boolean }
  /** Run the merge function and write its result. */
  | { kind: 'merge'; name: string; stamp: string };

/** Lowers a stamp further than `maxSkewMs` ahead of `nowMs` to that bound (counter and node kept). */
export function boundStamp(stamp: Hlc, nowMs: number, maxSkewMs: number): Hlc {
  const limit = Math.floor(nowMs) + Math.max(0, Math.floor(maxSkewMs));
  return stamp.wallMs > limit ? { wallMs: limit, counter: stamp.counter, node: stamp.node } : stamp;
}

/** The smallest stamp after `stored` and at least `incoming` (HLC receive without a wall clock). */
export function stampAfter(incoming: string, stored: string | null): string {
  if (stored === null || incoming > stored) return incoming;
  const after = decodeHlc(stored);
  return encodeHlc({ wallMs: after.wallMs, counter: after.counter + 1, node: decodeHlc(incoming).node });
}

/**
 * Decides one field. `sawCurrent`: true when the writer's `old` equals the
 * stored value, false when it differs, undefined when the writer sent no
 * `old` for this column.
 */
export function decideField(
  policy: ConflictPolicy,
  incoming: string,
  stored: FieldStamp,
  sawCurrent: boolean | undefined,
): FieldOutcome {
  if (sawCurrent === true) return { kind: 'apply', stamp: stampAfter(incoming, stored.hlc), lost: false };
  const newer = stored.hlc === null || incoming > stored.hlc;
  if (sawCurrent === undefined) {
    return newer ? { kind: 'apply', stamp: incoming, lost: false } : { kind: 'keep', record: true };
  }
  switch (policy.kind) {
    case 'server_wins':
      return { kind: 'keep', record: true };
    case 'client_wins':
      return { kind: 'apply', stamp: stampAfter(incoming, stored.hlc), lost: true };
    case 'merge':
      return { kind: 'merge', name: policy.name, stamp: stampAfter(incoming, stored.hlc) };
    case 'lww':
      return newer ? { kind: 'apply', stamp: incoming, lost: true } : { kind: 'keep', record: true };
  }
}
