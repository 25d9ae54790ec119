/** Retry delays: exponential from `initialMs` up to `maxMs`, with jitter. */
export interface RetryDelayOptions {
  /** First retry delay in ms (default 250). */
  initialMs?: number;
  /** Largest delay in ms (default 30 000). */
  maxMs?: number;
}

/**
 * The delay before retry number `attempt` (0-based): `initialMs * 2^attempt`
 * capped at `maxMs`, then scaled by a random factor in [0.5, 1) so clients
 * that failed together do not retry together ("equal jitter").
 */
export function retryDelay(
  attempt: number,
  options: RetryDelayOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 30_000;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.5 + random() * 0.5));
}

/** Resolves after `ms`, or early (without error) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });
}
