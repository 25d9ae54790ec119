/**
 * Splits a UTF-8 byte stream into lines, for the sync stream. Same
 * contract as `NdjsonDecoder` from `@ferry/protocol` (trimmed, non-empty
 * lines; a line may be cut anywhere, even inside a character), but built
 * for very long lines (a `data` line is often hundreds of KiB): each byte
 * is searched for the newline once, and each line is decoded once, whole.
 * (Splitting on the byte 0x0A is safe: it never occurs inside a multi-byte
 * UTF-8 sequence.)
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  /** Pieces of the unfinished line, in order. */
  private parts: Uint8Array[] = [];
  private partBytes = 0;

  /** Feeds a chunk; calls `onLine` with each complete non-empty line (without the newline). */
  push(chunk: Uint8Array, onLine: (line: string) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.emit(chunk.subarray(start, nl), onLine);
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
    this.emit(new Uint8Array(0), (line) => (rest = line));
    return rest;
  }

  private emit(tail: Uint8Array, onLine: (line: string) => void): void {
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
