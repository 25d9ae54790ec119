-- Rooms and bookings: the demo's validation hook (write-hooks.ts) flags two
-- bookings of one room, day and slot. There is deliberately no UNIQUE
-- (room_id, day, slot): two people booking offline must both be able to
-- upload, and the hook records the clash as a violation for them to sort out.
CREATE TABLE rooms (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  name text NOT NULL
);
CREATE INDEX rooms_workspace ON rooms (workspace_id);

CREATE TABLE bookings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  day date NOT NULL,
  slot text NOT NULL CHECK (slot ~ '^[0-2][0-9]:[0-5][0-9]$'), -- start of a one-hour slot, e.g. '14:00'
  title text NOT NULL,
  booked_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_workspace ON bookings (workspace_id);
CREATE INDEX bookings_room_slot ON bookings (room_id, day, slot);

-- Demo data: a few rooms per workspace.
INSERT INTO rooms (id, workspace_id, name) VALUES
  ('b1111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111', 'Studio'),
  ('b1111111-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', 'Boardroom'),
  ('b2222222-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', 'Depot'),
  ('b2222222-2222-4222-8222-222222222222', '22222222-2222-4222-8222-222222222222', 'Radio room'),
  ('b2222222-3333-4333-8333-333333333333', '22222222-2222-4222-8222-222222222222', 'Canteen');
