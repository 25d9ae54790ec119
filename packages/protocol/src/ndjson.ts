/**
 * Newline-delimited JSON framing. No I/O: feed chunks, receive whole lines.
 * A line may be split across any number of chunks, and a multi-byte UTF-8
 * character across two.
 */
export class NdjsonDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private buffer = '';

  /** Feeds a chunk; calls `onLine` with each complete non-empty line (without the newline). */
  push(chunk: Uint8Array | string, onLine: (line: string) => void): void {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\n', start);
      if (nl < 0) break;
      const line = this.buffer.slice(start, nl).trim();
      if (line.length > 0) onLine(line);
      start = nl + 1;
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.slice(start);
  }

  /** Ends the stream; returns trailing text that had no newline (empty if none). */
  end(): string {
    const rest = (this.buffer + this.decoder.decode()).trim();
    this.buffer = '';
    return rest;
  }
}

/** Serializes one line of the stream. */
export function encodeLine(message: unknown): string {
  return JSON.stringify(message) + '\n';
}
