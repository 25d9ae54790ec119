import type { TabLocks } from '@ferry/client';

interface Grant {
  readonly owner: object;
  released: boolean;
}

interface Waiter {
  readonly owner: object;
  readonly grant: (release: () => void) => void;
  readonly fail: (reason: unknown) => void;
}

/** A tab's view of {@link InProcessLocks}: closing it releases what it holds, as closing a browser tab does. */
export interface TabLocksHandle extends TabLocks {
  close(): void;
}

/**
 * Exclusive named locks shared in one process, like Web Locks shared by
 * the tabs of an origin: granted in request order, abortable while
 * waiting, released by their holder or when its tab closes.
 */
export class InProcessLocks {
  private readonly holders = new Map<string, Grant>();
  private readonly queues = new Map<string, Waiter[]>();
  /** How many times each lock was granted (tests look at hand-overs). */
  readonly grants = new Map<string, number>();

  /** A new tab's view of the locks. */
  tab(): TabLocksHandle {
    const owner = {};
    let closed = false;
    return {
      acquire: (name, signal) => {
        if (closed) return Promise.reject(new Error('the tab is closed'));
        return this.acquire(owner, name, signal);
      },
      close: () => {
        closed = true;
        for (const [name, queue] of this.queues) {
          const mine = queue.filter((w) => w.owner === owner);
          this.queues.set(
            name,
            queue.filter((w) => w.owner !== owner),
          );
          for (const waiter of mine) waiter.fail(new Error('the tab is closed'));
        }
        // Collected first: releasing grants the lock to the next tab, which changes the map.
        const held = Array.from(this.holders).filter(([, grant]) => grant.owner === owner);
        for (const [name, grant] of held) this.release(name, grant);
      },
    };
  }

  /** Whether some tab holds `name`. */
  isHeld(name: string): boolean {
    return this.holders.has(name);
  }

  private acquire(owner: object, name: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const queue = this.queues.get(name) ?? [];
        const at = queue.indexOf(waiter);
        if (at < 0) return; // already granted
        queue.splice(at, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        owner,
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        fail: (reason) => {
          signal?.removeEventListener('abort', onAbort);
          reject(reason);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      queue.push(waiter);
      this.next(name);
    });
  }

  /** Grants `name` to the first waiter if nobody holds it. */
  private next(name: string): void {
    if (this.holders.has(name)) return;
    const waiter = this.queues.get(name)?.shift();
    if (waiter === undefined) return;
    const grant: Grant = { owner: waiter.owner, released: false };
    this.holders.set(name, grant);
    this.grants.set(name, (this.grants.get(name) ?? 0) + 1);
    waiter.grant(() => this.release(name, grant));
  }

  private release(name: string, grant: Grant): void {
    if (grant.released) return;
    grant.released = true;
    if (this.holders.get(name) === grant) this.holders.delete(name);
    this.next(name);
  }
}
