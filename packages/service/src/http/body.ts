import type { IncomingMessage } from 'node:http';
import { FerryError } from '@ferry/protocol';
import type { z } from 'zod';

/** Reads a request body up to `limit` bytes. Throws FERRY_S4002 beyond it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function tooLarge(limit: number): FerryError {
  return new FerryError('FERRY_S4002', `request body is larger than ${limit} bytes`, { details: { limit } });
}

/** Parses a JSON body against a schema. Throws FERRY_S4001 with the issues as details. */
export function parseJsonBody<S extends z.ZodType>(body: Buffer, schema: S): z.output<S> {
  let json: unknown;
  try {
    json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new FerryError('FERRY_S4001', `request body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({
      path: issue.path.map(String).join('.'),
      message: issue.message,
    }));
    const first = issues[0]!;
    throw new FerryError(
      'FERRY_S4001',
      `invalid request body: ${first.path === '' ? '' : `${first.path}: `}${first.message}`,
      {
        details: { issues },
      },
    );
  }
  return result.data;
}
