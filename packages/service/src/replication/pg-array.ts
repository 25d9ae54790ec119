/**
 * Parser for Postgres' text output of arrays (`array_out`): `{1,2,NULL}`,
 * `{"a \"q\"",b}`, nested `{{1,2},{3,4}}`, with an optional bounds prefix
 * `[0:1]={…}`. Elements stay in their text form; `NULL` (unquoted) is null.
 */
import { FerryError } from '@ferry/protocol';

export type PgArray = (string | null | PgArray)[];

export function parsePgArray(text: string, delimiter = ','): PgArray {
  let pos = 0;
  if (text.startsWith('[')) {
    const eq = text.indexOf('=');
    if (eq < 0) throw invalid(text, 'bounds without "="');
    pos = eq + 1;
  }
  const fail = (why: string): never => {
    throw invalid(text, why);
  };

  const parseArray = (): PgArray => {
    if (text[pos] !== '{') fail(`expected "{" at ${pos}`);
    pos++;
    const out: PgArray = [];
    if (text[pos] === '}') {
      pos++;
      return out;
    }
    for (;;) {
      const ch = text[pos];
      if (ch === '{') {
        out.push(parseArray());
      } else if (ch === '"') {
        pos++;
        let value = '';
        for (;;) {
          if (pos >= text.length) fail('unterminated quoted element');
          const c = text[pos]!;
          if (c === '\\') {
            value += text[pos + 1] ?? '';
            pos += 2;
          } else if (c === '"') {
            pos++;
            break;
          } else {
            value += c;
            pos++;
          }
        }
        out.push(value);
      } else {
        const start = pos;
        let value = '';
        let escaped = false;
        while (pos < text.length && text[pos] !== delimiter && text[pos] !== '}') {
          if (text[pos] === '\\') {
            escaped = true;
            value += text[pos + 1] ?? '';
            pos += 2;
          } else {
            value += text[pos];
            pos++;
          }
        }
        if (pos === start) fail(`empty element at ${pos}`);
        value = value.trim();
        out.push(!escaped && value.toUpperCase() === 'NULL' ? null : value);
      }
      const sep = text[pos];
      if (sep === delimiter) {
        pos++;
        continue;
      }
      if (sep === '}') {
        pos++;
        return out;
      }
      fail(`expected "${delimiter}" or "}" at ${pos}`);
    }
  };

  const result = parseArray();
  if (pos !== text.length) fail(`trailing text at ${pos}`);
  return result;
}

function invalid(text: string, why: string): FerryError {
  return new FerryError('FERRY_S3005', `cannot parse Postgres array literal (${why}): ${text.slice(0, 80)}`);
}
