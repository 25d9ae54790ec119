/**
 * A FIFO async mutex: `run(fn)` calls `fn` once every earlier holder has
 * finished, whether it resolved or threw.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
