/**
 * Newline-delimited JSON framing. No I/O: feed chunks, receive whole lines
 * (trimmed, blank lines skipped). A line may be cut anywhere, even inside a
 * multi-byte UTF-8 character.
 *
 * Built for very long lines (a `data` line is often hundreds of KiB): each
 * byte is searched for the newline once, and each line is decoded once,
 * whole. Splitting on the byte 0x0A is safe because it never occurs inside a
 * multi-byte UTF-8 sequence.
 */
export class NdjsonDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  /** Pieces of the unfinished line, in order. */
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  /** Unfinished line text when fed strings. */
  private text = '';

  /** Feeds a chunk; calls `onLine` with each complete non-empty line (without the newline). */
  push(chunk: Uint8Array | string, onLine: (line: string) => void): void {
    if (typeof chunk === 'string') {
      this.pushText(chunk, onLine);
      return;
    }
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.emitBytes(chunk.subarray(start, nl), onLine);
      start = nl + 1;
    }
    if (start < chunk.length) {
      // Copy: the caller may reuse the chunk's buffer.
      this.parts.push(chunk.slice(start));
      this.partBytes += chunk.length - start;
    }
  }

  /** Ends the stream; returns trailing text that had no newline (empty if none). */
  end(): string {
    let rest = '';
    this.emitBytes(new Uint8Array(0), (line) => (rest = line));
    if (this.text.length > 0) {
      rest = (rest + this.text).trim();
      this.text = '';
    }
    return rest;
  }

  private pushText(chunk: string, onLine: (line: string) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const line = (this.text + chunk.slice(start, nl)).trim();
      this.text = '';
      if (line.length > 0) onLine(line);
      start = nl + 1;
    }
    this.text += chunk.slice(start);
  }

  private emitBytes(tail: Uint8Array, onLine: (line: string) => void): void {
    let bytes = tail;
    if (this.parts.length > 0) {
      bytes = new Uint8Array(this.partBytes + tail.length);
      let offset = 0;
      for (const part of this.parts) {
        bytes.set(part, offset);
        offset += part.length;
      }
      bytes.set(tail, offset);
      this.parts = [];
      this.partBytes = 0;
    }
    if (bytes.length === 0) return;
    const line = this.decoder.decode(bytes).trim();
    if (line.length > 0) onLine(line);
  }
}

/** Serializes one line of the stream. */
export function encodeLine(message: unknown): string {
  return JSON.stringify(message) + '\n';
}
