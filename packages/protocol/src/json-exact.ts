/**
 * JSON parsing that keeps integers beyond 2^53 exact (as bigint), the
 * inverse of {@link rowToJson}: an int8 written by a client must reach
 * Postgres unchanged. Text without such integers (almost all) goes through
 * `JSON.parse`; only text that has one is parsed here.
 */

/** Any integer literal with 16+ digits outside a string might not be safe. */
function mayHaveUnsafeInteger(text: string): boolean {
  let inString = false;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
      continue;
    }
    if (c === 34) {
      inString = true;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits >= 16) return true;
    } else {
      digits = 0;
    }
  }
  return false;
}

/** Parses JSON; integers that are not safe JavaScript numbers become bigints. Throws SyntaxError like JSON.parse. */
export function parseJsonExact(text: string): unknown {
  if (!mayHaveUnsafeInteger(text)) return JSON.parse(text);
  return new ExactParser(text).parseDocument();
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// JSON.parse of the match rejects raw control characters and bad escapes.
const STRING = /"(?:[^"\\]|\\.)*"/y;
const WHITESPACE = /[ \t\n\r]*/y;

class ExactParser {
  private readonly text: string;
  private at = 0;

  constructor(text: string) {
    this.text = text;
  }

  parseDocument(): unknown {
    const value = this.value();
    this.skip();
    if (this.at !== this.text.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(message: string): never {
    throw new SyntaxError(`${message} at position ${this.at}`);
  }

  private skip(): void {
    WHITESPACE.lastIndex = this.at;
    WHITESPACE.exec(this.text);
    this.at = WHITESPACE.lastIndex;
  }

  private value(): unknown {
    this.skip();
    const c = this.text[this.at];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (this.text.startsWith('true', this.at)) return ((this.at += 4), true);
    if (this.text.startsWith('false', this.at)) return ((this.at += 5), false);
    if (this.text.startsWith('null', this.at)) return ((this.at += 4), null);
    return this.number();
  }

  private string(): string {
    STRING.lastIndex = this.at;
    const match = STRING.exec(this.text);
    if (match === null) this.fail('invalid string');
    this.at = STRING.lastIndex;
    return JSON.parse(match[0]) as string;
  }

  private number(): number | bigint {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail('unexpected character');
    this.at = NUMBER.lastIndex;
    const literal = match[0];
    const value = Number(literal);
    if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(value)) return BigInt(literal);
    return value;
  }

  private array(): unknown[] {
    this.at++; // [
    const result: unknown[] = [];
    this.skip();
    if (this.text[this.at] === ']') return (this.at++, result);
    for (;;) {
      result.push(this.value());
      this.skip();
      const c = this.text[this.at++];
      if (c === ']') return result;
      if (c !== ',') this.fail('expected , or ]');
    }
  }

  private object(): Record<string, unknown> {
    this.at++; // {
    const result: Record<string, unknown> = {};
    this.skip();
    if (this.text[this.at] === '}') return (this.at++, result);
    for (;;) {
      this.skip();
      if (this.text[this.at] !== '"') this.fail('expected a key');
      const key = this.string();
      this.skip();
      if (this.text[this.at++] !== ':') this.fail('expected :');
      Object.defineProperty(result, key, { value: this.value(), enumerable: true, writable: true, configurable: true });
      this.skip();
      const c = this.text[this.at++];
      if (c === '}') return result;
      if (c !== ',') this.fail('expected , or }');
    }
  }
}
