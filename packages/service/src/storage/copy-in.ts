/**
 * `COPY … FROM STDIN` on a node-postgres client, without a streaming
 * dependency: the whole payload is in memory already (one bounded batch), so
 * it is sent as one CopyData message followed by CopyDone when the server
 * asks for it. Queued like any other query on the client.
 */
import pg from 'pg';

/** The part of pg's Connection a COPY needs. */
interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

class CopyInQuery extends pg.Query {
  readonly #payload: Buffer;

  constructor(text: string, payload: Buffer, callback: (error: Error | undefined, result: unknown) => void) {
    super(text, callback);
    this.#payload = payload;
  }

  /** Called by pg's Client on CopyInResponse (replaces Query's default, which fails the COPY). */
  handleCopyInResponse(connection: CopyConnection): void {
    connection.sendCopyFromChunk(this.#payload);
    connection.endCopyFrom();
  }
}

/** Runs `text` (a `COPY … FROM STDIN` statement) with `payload` as its data; resolves with the rows copied. */
export function copyIn(client: pg.ClientBase, text: string, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const query = new CopyInQuery(text, payload, (error, result) => {
      if (error) reject(error);
      else resolve((result as { rowCount?: number | null }).rowCount ?? 0);
    });
    void client.query(query);
  });
}
