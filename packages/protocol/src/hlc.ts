/**
 * Hybrid logical clock (HLC): a timestamp that follows the wall clock when
 * it can and never goes backwards when it cannot. Every op a client queues
 * carries one, so ops are totally ordered per client and roughly ordered
 * across clients, whatever their wall clocks say.
 *
 * `wallMs` is the largest wall time seen (ms since the epoch), `counter`
 * orders stamps within one `wallMs`, `node` (the client id) breaks ties.
 */
export interface Hlc {
  readonly wallMs: number;
  readonly counter: number;
  readonly node: string;
}

/** Largest `wallMs` the encoding holds (12 hex digits: beyond year 10000). */
export const HLC_MAX_WALL_MS = 0xffff_ffff_ffff;
/** Largest `counter` (8 hex digits); one more moves `wallMs` forward by 1 ms. */
export const HLC_MAX_COUNTER = 0xffff_ffff;
/** A remote stamp further ahead of the local wall clock than this is rejected (24 h). */
export const HLC_MAX_DRIFT_MS = 24 * 60 * 60 * 1000;

const WALL_DIGITS = 12;
const COUNTER_DIGITS = 8;
const PREFIX = WALL_DIGITS + COUNTER_DIGITS;
const HEX = /^[0-9a-f]+$/;

function checkWall(wallMs: number, what: string): void {
  if (!Number.isSafeInteger(wallMs) || wallMs < 0 || wallMs > HLC_MAX_WALL_MS) {
    throw new RangeError(`HLC: ${what} ${wallMs} is not an integer in [0, ${HLC_MAX_WALL_MS}]`);
  }
}

function checkHlc(hlc: Hlc, what: string): void {
  checkWall(hlc.wallMs, `${what} wallMs`);
  if (!Number.isSafeInteger(hlc.counter) || hlc.counter < 0 || hlc.counter > HLC_MAX_COUNTER) {
    throw new RangeError(`HLC: ${what} counter ${hlc.counter} is not an integer in [0, ${HLC_MAX_COUNTER}]`);
  }
}

/** (wallMs, counter) with counter overflow carried into wallMs. */
function make(wallMs: number, counter: number, node: string): Hlc {
  if (counter > HLC_MAX_COUNTER) {
    wallMs += 1;
    counter = 0;
  }
  checkWall(wallMs, 'wallMs');
  return { wallMs, counter, node };
}

/**
 * The next local stamp: strictly after `prev` (when given), and at least
 * the wall clock `nowMs` (floored to an integer). A wall clock that went
 * backwards keeps `prev.wallMs` and bumps the counter.
 */
export function hlcNow(prev: Hlc | null, nowMs: number, node: string): Hlc {
  const now = Math.floor(nowMs);
  checkWall(now, 'nowMs');
  if (prev === null) return { wallMs: now, counter: 0, node };
  checkHlc(prev, 'previous');
  if (now > prev.wallMs) return { wallMs: now, counter: 0, node };
  return make(prev.wallMs, prev.counter + 1, node);
}

/**
 * Merges a stamp received from elsewhere into the local clock: the result
 * (keeping the local node) is strictly after both `local` and `remote` and
 * at least `nowMs`. Throws a RangeError when `remote` is more than
 * {@link HLC_MAX_DRIFT_MS} ahead of `nowMs`, so one bad clock cannot drag
 * every other clock into the future.
 */
export function hlcReceive(local: Hlc, remote: Hlc, nowMs: number, maxDriftMs = HLC_MAX_DRIFT_MS): Hlc {
  const now = Math.floor(nowMs);
  checkWall(now, 'nowMs');
  checkHlc(local, 'local');
  checkHlc(remote, 'remote');
  if (remote.wallMs - now > maxDriftMs) {
    throw new RangeError(
      `HLC: remote stamp is ${remote.wallMs - now} ms ahead of the local clock (limit ${maxDriftMs} ms)`,
    );
  }
  const wall = Math.max(local.wallMs, remote.wallMs, now);
  let counter: number;
  if (wall === local.wallMs && wall === remote.wallMs) counter = Math.max(local.counter, remote.counter) + 1;
  else if (wall === local.wallMs) counter = local.counter + 1;
  else if (wall === remote.wallMs) counter = remote.counter + 1;
  else counter = 0;
  return make(wall, counter, local.node);
}

/** Orders stamps by wallMs, then counter, then node (plain string order). */
export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.node === b.node) return 0;
  return a.node < b.node ? -1 : 1;
}

/**
 * Text form whose plain string order is the HLC order: 12 lowercase hex
 * digits of wallMs, 8 of counter, then the node as is.
 */
export function encodeHlc(hlc: Hlc): string {
  checkHlc(hlc, 'encoded');
  return (
    hlc.wallMs.toString(16).padStart(WALL_DIGITS, '0') +
    hlc.counter.toString(16).padStart(COUNTER_DIGITS, '0') +
    hlc.node
  );
}

/** Parses {@link encodeHlc}'s text; throws a RangeError on anything else. */
export function decodeHlc(text: string): Hlc {
  const wall = text.slice(0, WALL_DIGITS);
  const counter = text.slice(WALL_DIGITS, PREFIX);
  if (text.length < PREFIX || !HEX.test(wall) || !HEX.test(counter)) {
    throw new RangeError(`HLC: ${JSON.stringify(text.slice(0, 40))} is not an encoded HLC`);
  }
  return { wallMs: parseInt(wall, 16), counter: parseInt(counter, 16), node: text.slice(PREFIX) };
}
