-- Test sends (`POST /v1/destinations/{id}/test`, the console's "send a test event") may
-- carry a catalog type's example payload under that type's name. Such an event is meant
-- for the one destination it was sent to: outage recovery must not hand it to another
-- destination of that type as if it had happened, so test events say what they are.
-- A constant default adds the column without rewriting the table.
ALTER TABLE events ADD COLUMN test boolean NOT NULL DEFAULT false;
