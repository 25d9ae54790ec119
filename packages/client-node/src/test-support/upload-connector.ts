import type { FerryConnector, FerryDatabase, UploadDataOptions } from '@ferry/client';

/** What a scripted `uploadData` does on one call. */
export type UploadStep = (db: FerryDatabase, options: UploadDataOptions) => Promise<void>;

/**
 * A connector whose `uploadData` the test scripts: each call runs `step`
 * (replace it at any time) and is counted. Credentials point at the fake
 * service (`http://ferry.test/`).
 */
export class ScriptedConnector implements FerryConnector {
  step: UploadStep;
  calls = 0;
  tokens = 0;
  invalidated = 0;

  constructor(step: UploadStep = drainAll) {
    this.step = step;
  }

  async fetchCredentials() {
    return { endpoint: 'http://ferry.test/', token: `token-${++this.tokens}` };
  }

  invalidateCredentials(): void {
    this.invalidated++;
  }

  async uploadData(db: FerryDatabase, options: UploadDataOptions = {}): Promise<void> {
    this.calls++;
    await this.step(db, options);
  }
}

/** Completes every queued op as applied (a backend that accepts everything). */
export const drainAll: UploadStep = async (db) => {
  for (let batch = await db.getCrudBatch(1000); batch !== null; batch = await db.getCrudBatch(1000)) {
    await batch.complete();
  }
};

/** A promise with its resolve function exposed. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
