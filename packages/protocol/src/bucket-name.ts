import { valuesToJson } from './json.js';
import type { SqliteValue } from './values.js';

/**
 * Bucket names are `<definition>[<param>,…]`: the bucket definition's name
 * followed by its parameter values as a JSON array. A bucket without
 * parameters is `<definition>[]`. The name is opaque to clients.
 */
export function bucketName(definition: string, params: readonly SqliteValue[]): string {
  return definition + valuesToJson(params);
}

/** Splits a bucket name into its definition and the JSON text of its parameters. */
export function splitBucketName(name: string): { definition: string; paramsJson: string } {
  const open = name.indexOf('[');
  if (open <= 0 || !name.endsWith(']')) throw new RangeError(`invalid bucket name: ${JSON.stringify(name)}`);
  return { definition: name.slice(0, open), paramsJson: name.slice(open) };
}
