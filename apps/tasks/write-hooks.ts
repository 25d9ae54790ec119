// Write hooks of the task-board demo (docs/write-rules.md, "Hooks module").
// `ferry dev` loads this file because it sits next to write-rules.yaml; the
// service runs it inside the transaction that applies a client's upload.
import type { WriteHooks } from '@ferry/service';

export default {
  validate: {
    /**
     * Flags double bookings. Two people may book the same room, day and slot
     * (offline, say): both bookings are kept, and each overlapping pair
     * becomes a row of `ferry_violations` that syncs to the workspace's
     * members. The server clears it when a later write to either booking
     * (moving or cancelling it) is no longer flagged here.
     */
    async bookings({ op, row, tx, violation }) {
      if (row === null) return; // a cancelled booking clashes with nothing
      // Serialize bookings of one room, day and slot: the lock is held until
      // commit, and each statement of the apply transaction (READ COMMITTED)
      // sees what committed before it. Two uploads booking the slot at once
      // therefore run one after the other, and the second finds the first.
      await tx.query(
        `SELECT pg_advisory_xact_lock(hashtext(concat_ws('|', room_id, day, slot))) FROM bookings WHERE id = $1`,
        [op.id],
      );
      // The other bookings of this one's room, day and slot (compared in SQL,
      // so no date travels through JavaScript).
      const { rows } = await tx.query<{ id: string; room: string; day: string; slot: string }>(
        `SELECT other.id::text AS id, r.name AS room, b.day::text AS day, b.slot
           FROM bookings b
           JOIN rooms r ON r.id = b.room_id
           JOIN bookings other ON other.room_id = b.room_id AND other.day = b.day AND other.slot = b.slot
          WHERE b.id = $1 AND other.id <> b.id
          ORDER BY other.id`,
        [op.id],
      );
      for (const other of rows) {
        violation({
          // One record per pair, whichever of the two was written last.
          key: `double-booking:${[op.id, other.id].sort().join(':')}`,
          code: 'double_booking',
          message: `${other.room} is booked twice on ${other.day} at ${other.slot}`,
          rows: [{ table: 'bookings', id: other.id }],
        });
      }
    },
  },
  merge: {
    /**
     * `tasks.updated_at` (write-rules.yaml): two concurrent edits of a task
     * both set it; keep the later time rather than recording a conflict
     * about a timestamp.
     */
    latest: ({ current, incoming }) => {
      const stored = Date.parse(String(current));
      return Number.isNaN(stored) || Date.parse(String(incoming)) > stored ? incoming : current;
    },
  },
} satisfies WriteHooks;
