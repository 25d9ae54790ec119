import { describe, expect, it } from 'vitest';
import { Mutex } from './mutex.js';

describe('Mutex', () => {
  it('runs holders one at a time in call order, even when one throws', async () => {
    const mutex = new Mutex();
    const log: string[] = [];
    const hold = (name: string, fail = false) =>
      mutex.run(async () => {
        log.push(`start ${name}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
        log.push(`end ${name}`);
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([hold('a'), hold('b', true), hold('c')]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});
