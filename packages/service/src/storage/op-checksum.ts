/**
 * Op checksums computed with node:crypto's native SHA-256, for the writer's
 * hot path. Results are identical to `putChecksum` / `removeChecksum` from
 * @ferry/protocol (the platform-free reference, pure JavaScript SHA-256):
 * the same canonical strings, hashed as UTF-8, first four digest bytes read
 * as a little-endian u32. op-checksum.test.ts checks the two agree on random
 * input, including unpaired surrogates (both encode them as U+FFFD).
 */
import type { Checksum } from '@ferry/protocol';
import { hash } from 'node:crypto';

function hashText(text: string): Checksum {
  return hash('sha256', text, 'buffer').readUInt32LE(0);
}

/** Checksum of a PUT op. `data` is the exact JSON text sent to clients. */
export function putChecksum(objectType: string, objectId: string, data: string, subkey?: string | null): Checksum {
  return subkey == null
    ? hashText(`put.${objectType}.${objectId}.${data}`)
    : hashText(`put.${objectType}.${objectId}.${subkey}.${data}`);
}

/** Checksum of a REMOVE op. */
export function removeChecksum(objectType: string, objectId: string, subkey?: string | null): Checksum {
  return subkey == null
    ? hashText(`delete.${objectType}.${objectId}`)
    : hashText(`delete.${objectType}.${objectId}.${subkey}`);
}
