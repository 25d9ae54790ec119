import { sha256 } from '@noble/hashes/sha2.js';

/**
 * Checksums, compatible with PowerSync's sync protocol.
 *
 * - An op's checksum is the first four bytes of SHA-256 over a canonical
 *   string, read as a little-endian u32:
 *   PUT: `put.<object_type>.<object_id>.<data>`; REMOVE: `delete.<object_type>.<object_id>`
 *   (the subkey, when present, is appended as `.<subkey>` in both).
 * - A bucket's checksum is the wrapping u32 sum of the checksums of every op
 *   in it, including MOVE tombstones (which keep the checksum of the op they
 *   replaced) and a CLEAR (whose checksum is the sum of everything it replaced).
 *   Compaction therefore never changes a bucket's checksum.
 * - Clients only ever add checksums; they never need to hash. Any u32 the
 *   service sends is valid as long as the sums agree.
 *
 * Values are plain numbers in [0, 2^32). Peers may send them as i32; use
 * {@link normalizeChecksum} on input.
 */
export type Checksum = number;

const encoder = new TextEncoder();

function hashText(text: string): Checksum {
  const digest = sha256(encoder.encode(text));
  // little-endian u32 of the first four bytes
  return (digest[0]! | (digest[1]! << 8) | (digest[2]! << 16) | (digest[3]! << 24)) >>> 0;
}

/** Checksum of a PUT op. `data` is the exact JSON text sent to clients. */
export function putChecksum(objectType: string, objectId: string, data: string, subkey?: string | null): Checksum {
  const tail = subkey == null ? '' : `.${subkey}`;
  return hashText(`put.${objectType}.${objectId}${tail}.${data}`);
}

/** Checksum of a REMOVE op. */
export function removeChecksum(objectType: string, objectId: string, subkey?: string | null): Checksum {
  const tail = subkey == null ? '' : `.${subkey}`;
  return hashText(`delete.${objectType}.${objectId}${tail}`);
}

/** Wrapping u32 addition. */
export function addChecksums(a: Checksum, b: Checksum): Checksum {
  return (a + b) >>> 0;
}

/** Wrapping u32 subtraction (a - b). */
export function subtractChecksums(a: Checksum, b: Checksum): Checksum {
  return (a - b) >>> 0;
}

/**
 * Accepts a checksum as any peer may send it (u32, or i32 as PowerSync's
 * older services do) and returns the u32. Throws on anything else.
 */
export function normalizeChecksum(value: unknown): Checksum {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff) {
    throw new RangeError(`invalid checksum: ${String(value)}`);
  }
  return value >>> 0;
}
