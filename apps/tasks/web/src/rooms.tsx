import type { Violation } from '@ferry/client';
import { useFerry, useQuery, useViolations } from '@ferry/react';
import { useState, type FormEvent } from 'react';
import { addBooking, cancelBooking, moveBooking } from './actions';
import { SLOTS } from './schema';

interface RoomRow {
  id: string;
  name: string | null;
}

interface BookingRow {
  id: string;
  room_id: string;
  slot: string;
  title: string | null;
  booked_by: string | null;
}

/** Today in the browser's time zone, as `YYYY-MM-DD` (the form of a Postgres `date` on the client). */
function today(): string {
  const now = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/**
 * The workspace's rooms on one day: one-hour slots from 09:00 to 17:00. A
 * free slot can be booked; your own bookings can be moved or cancelled. Two
 * bookings of one slot (made while offline, say) are both kept by the
 * server, whose `bookings` hook flags them: the flag comes back as a row of
 * `ferry_violations` (`useViolations`) and goes once one of them moves.
 */
export function RoomsView({ workspaceId, user }: { workspaceId: string; user: string }) {
  const [day, setDay] = useState(today);
  const { data: rooms } = useQuery<RoomRow>(`SELECT id, name FROM rooms WHERE workspace_id = ? ORDER BY name, id`, [
    workspaceId,
  ]);
  const { data: bookings } = useQuery<BookingRow>(
    `SELECT id, room_id, slot, title, booked_by FROM bookings
      WHERE workspace_id = ? AND day = ? ORDER BY slot, created_at, id`,
    [workspaceId, day],
  );
  const { data: violations } = useViolations({ table: 'bookings' });
  /** The violations each booking is involved in. */
  const flags = new Map<string, Violation[]>();
  for (const violation of violations) {
    for (const row of violation.rows) {
      if (row.table !== 'bookings') continue;
      flags.set(row.id, [...(flags.get(row.id) ?? []), violation]);
    }
  }

  if (rooms.length === 0) {
    return (
      <p className="empty" data-testid="no-rooms">
        This workspace has no rooms.
      </p>
    );
  }
  return (
    <section className="rooms" data-testid="rooms" aria-labelledby="rooms-title">
      <div className="rooms-header">
        <h3 id="rooms-title">Rooms</h3>
        <label>
          <span>Day</span>
          <input type="date" value={day} required onChange={(e) => e.target.value !== '' && setDay(e.target.value)} />
        </label>
      </div>
      <table className="rooms-grid">
        <thead>
          <tr>
            <th scope="col">Slot</th>
            {rooms.map((room) => (
              <th scope="col" key={room.id}>
                {room.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {SLOTS.map((slot) => (
            <tr key={slot}>
              <th scope="row">{slot}</th>
              {rooms.map((room) => (
                <SlotCell
                  key={room.id}
                  workspaceId={workspaceId}
                  room={room}
                  day={day}
                  slot={slot}
                  user={user}
                  bookings={bookings.filter((b) => b.room_id === room.id && b.slot === slot)}
                  flags={flags}
                />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function SlotCell(props: {
  workspaceId: string;
  room: RoomRow;
  day: string;
  slot: string;
  user: string;
  bookings: BookingRow[];
  flags: ReadonlyMap<string, Violation[]>;
}) {
  const db = useFerry();
  const [booking, setBooking] = useState(false);
  const [title, setTitle] = useState('');
  const roomName = props.room.name ?? '';
  const book = (event: FormEvent): void => {
    event.preventDefault();
    const value = title.trim();
    if (value === '') return;
    setBooking(false);
    setTitle('');
    void addBooking(db, {
      workspaceId: props.workspaceId,
      roomId: props.room.id,
      day: props.day,
      slot: props.slot,
      title: value,
      bookedBy: props.user,
    });
  };
  return (
    <td data-testid="slot" data-room={roomName} data-slot={props.slot}>
      {props.bookings.map((b) => (
        <BookingItem key={b.id} booking={b} mine={b.booked_by === props.user} flags={props.flags.get(b.id) ?? []} />
      ))}
      {booking ? (
        <form className="booking-form" onSubmit={book}>
          <label>
            <span className="visually-hidden">What for?</span>
            <input
              value={title}
              placeholder="What for?"
              aria-label="What for?"
              onChange={(e) => setTitle(e.target.value)}
              autoFocus
              maxLength={100}
            />
          </label>
          <button type="submit">Confirm booking</button>
          <button type="button" onClick={() => setBooking(false)}>
            Cancel
          </button>
        </form>
      ) : (
        // A taken slot is not offered; two bookings of one slot only happen when people cannot see each other.
        props.bookings.length === 0 && (
          <button
            type="button"
            className="book"
            aria-label={`Book ${roomName} at ${props.slot}`}
            onClick={() => setBooking(true)}
          >
            Book
          </button>
        )
      )}
    </td>
  );
}

function BookingItem({ booking: b, mine, flags }: { booking: BookingRow; mine: boolean; flags: Violation[] }) {
  const db = useFerry();
  const [target, setTarget] = useState('');
  const title = b.title ?? '';
  const move = (event: FormEvent): void => {
    event.preventDefault();
    if (target !== '' && target !== b.slot) void moveBooking(db, b.id, target);
  };
  return (
    <div
      className={`booking${flags.length > 0 ? ' booking-flagged' : ''}`}
      data-testid="booking"
      data-booking-id={b.id}
      data-flagged={flags.length > 0}
    >
      <p className="booking-title">
        <strong>{title}</strong> <span className="booking-by">{mine ? 'you' : b.booked_by}</span>
      </p>
      {flags.length > 0 && (
        <div className="booking-flag" role="status">
          <span className="badge badge-flag" data-testid="double-booked">
            Double booked
          </span>
          {flags.map((v) => (
            <p key={v.id} className="booking-violation" data-testid="violation-message" data-code={v.code}>
              {v.message}
            </p>
          ))}
        </div>
      )}
      {mine && (
        <form className="booking-actions" onSubmit={move}>
          <select aria-label={`New slot for “${title}”`} value={target} onChange={(e) => setTarget(e.target.value)}>
            <option value="">Slot…</option>
            {SLOTS.filter((s) => s !== b.slot).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
          <button type="submit" disabled={target === ''} aria-label={`Move “${title}”`}>
            Move
          </button>
          <button type="button" aria-label={`Cancel “${title}”`} onClick={() => void cancelBooking(db, b.id)}>
            Cancel
          </button>
        </form>
      )}
    </div>
  );
}
