import type { LineCounter, Scalar } from 'yaml';

/**
 * Maps offsets in a YAML scalar's *value* (the query text the SQL parser sees)
 * back to line and column in the rules file.
 *
 * The value differs from the file text by indentation (block scalars), line
 * folding (plain and `>` scalars) and escapes (quoted scalars). We align the
 * two texts greedily, skipping whitespace that exists in only one of them.
 * This is exact for plain single-line and `|` scalars; for folded and quoted
 * scalars with escapes it lands on the right line with an approximate column.
 */
export class ScalarSourceMap {
  readonly #source: string;
  readonly #lineCounter: LineCounter;
  readonly #value: string;
  /** Offset in the file where the scalar's content starts (after `|`/`>` header or opening quote). */
  readonly #contentStart: number;
  readonly #contentEnd: number;

  constructor(source: string, lineCounter: LineCounter, node: Scalar, value: string) {
    this.#source = source;
    this.#lineCounter = lineCounter;
    this.#value = value;
    const [start, valueEnd] = node.range ?? [0, 0];
    let contentStart = start;
    switch (node.type) {
      case 'BLOCK_LITERAL':
      case 'BLOCK_FOLDED': {
        const newline = source.indexOf('\n', start);
        contentStart = newline < 0 ? valueEnd : newline + 1;
        break;
      }
      case 'QUOTE_DOUBLE':
      case 'QUOTE_SINGLE':
        contentStart = start + 1;
        break;
      default:
        break;
    }
    this.#contentStart = contentStart;
    this.#contentEnd = Math.max(contentStart, valueEnd);
  }

  /** File offset of the character at `offset` in the value. */
  fileOffset(offset: number): number {
    const value = this.#value;
    const src = this.#source;
    let i = 0;
    let j = this.#contentStart;
    const end = this.#contentEnd;
    // Skip leading indentation of the first content line.
    while (j < end && (src[j] === ' ' || src[j] === '\t') && value[0] !== ' ') j++;
    while (i < offset && j < end) {
      const v = value[i];
      const s = src[j];
      if (v === s) {
        i++;
        j++;
      } else if (s === ' ' || s === '\t' || s === '\n' || s === '\r') {
        j++;
      } else if (v === ' ' || v === '\n' || v === '\t') {
        i++;
      } else {
        // An escape sequence: consume one character on each side.
        i++;
        j++;
      }
    }
    // Land on the next real character rather than on skipped indentation.
    if (i >= offset && i < value.length) {
      const v = value[i];
      while (j < end && src[j] !== v && (src[j] === ' ' || src[j] === '\t' || src[j] === '\n' || src[j] === '\r')) j++;
    }
    return j;
  }

  /** 1-based line and column of `offset` in the value. */
  position(offset: number): { line: number; column: number } {
    const { line, col } = this.#lineCounter.linePos(this.fileOffset(offset));
    return { line, column: col };
  }

  /** 1-based position of the scalar itself (for problems with the whole query). */
  start(): { line: number; column: number } {
    const { line, col } = this.#lineCounter.linePos(this.#contentStart);
    return { line, column: col };
  }
}

/** Converts a UTF-8 byte offset into `text` (as libpg-query reports) to a UTF-16 offset. */
export function byteToCharOffset(text: string, byteOffset: number): number {
  let bytes = 0;
  let i = 0;
  while (i < text.length && bytes < byteOffset) {
    const code = text.codePointAt(i) ?? 0;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    i += code >= 0x10000 ? 2 : 1;
  }
  return i;
}
