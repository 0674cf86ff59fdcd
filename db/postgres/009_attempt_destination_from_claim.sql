-- The claim now writes each attempt's destination_id itself; the trigger from 004 stays
-- for other inserts but no longer runs (a plpgsql call and a lookup) on the hot path.
DROP TRIGGER delivery_attempts_destination ON delivery_attempts;
CREATE TRIGGER delivery_attempts_destination BEFORE INSERT ON delivery_attempts
    FOR EACH ROW WHEN (NEW.destination_id IS NULL)
    EXECUTE FUNCTION courier_attempt_destination();
