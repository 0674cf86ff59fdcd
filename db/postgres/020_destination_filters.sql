-- Payload filters: a destination takes only the events whose payload matches its
-- `filter` (NULL: every event its event_types let through). The rules are those of
-- courier.filters, which validates every stored filter and is the reference these
-- functions are tested against; only valid filters reach them.
--
-- Fan-out evaluates `filter_plan`, the filter compiled once when it is written: nested
-- arrays that courier_filter_eval walks with plain expressions only. Walking the
-- filter document itself takes a query per object (jsonb_each), about 10 us each:
-- four times the cost per evaluation.
--   ["and", node, ...] | ["or", node, ...] | ["not", node]
--   [test, [step, ...], operand]  test: eq, in, gt, gte, lt, lte, exists
-- A test fails on a missing path; $ne, $nin and $exists: false are `not` of a test.

-- The plan of one path's condition (a bare value means $eq).
CREATE FUNCTION courier_filter_condition_plan(p_path jsonb, p_condition jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    nodes jsonb := '[]';
    op text;
    operand jsonb;
BEGIN
    IF jsonb_typeof(p_condition) <> 'object'
       OR NOT EXISTS (SELECT 1 FROM jsonb_object_keys(p_condition) AS k WHERE starts_with(k, '$')) THEN
        RETURN jsonb_build_array('eq', p_path, p_condition);
    END IF;
    FOR op, operand IN SELECT key, value FROM jsonb_each(p_condition) LOOP
        nodes := nodes || jsonb_build_array(CASE op
            WHEN '$eq' THEN jsonb_build_array('eq', p_path, operand)
            WHEN '$ne' THEN jsonb_build_array('not', jsonb_build_array('eq', p_path, operand))
            WHEN '$in' THEN jsonb_build_array('in', p_path, operand)
            WHEN '$nin' THEN jsonb_build_array('not', jsonb_build_array('in', p_path, operand))
            WHEN '$exists' THEN CASE WHEN operand = 'true'
                                     THEN jsonb_build_array('exists', p_path)
                                     ELSE jsonb_build_array('not', jsonb_build_array('exists', p_path)) END
            WHEN '$not' THEN jsonb_build_array('not', courier_filter_condition_plan(p_path, operand))
            ELSE jsonb_build_array(substr(op, 2), p_path, operand)  -- $gt $gte $lt $lte
        END);
    END LOOP;
    RETURN CASE WHEN jsonb_array_length(nodes) = 1 THEN nodes -> 0
                ELSE jsonb_build_array('and') || nodes END;
END
$$;

-- The plan of a filter document.
CREATE FUNCTION courier_filter_plan(p_filter jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    nodes jsonb := '[]';
    key text;
    value jsonb;
BEGIN
    FOR key, value IN SELECT k, v FROM jsonb_each(p_filter) AS e(k, v) LOOP
        IF key IN ('$and', '$or') THEN
            nodes := nodes || jsonb_build_array(
                jsonb_build_array(CASE key WHEN '$and' THEN 'and' ELSE 'or' END)
                || (SELECT jsonb_agg(courier_filter_plan(x.f)) FROM jsonb_array_elements(value) AS x(f)));
        ELSIF key = '$not' THEN
            nodes := nodes || jsonb_build_array(jsonb_build_array('not', courier_filter_plan(value)));
        ELSE
            nodes := nodes || jsonb_build_array(
                courier_filter_condition_plan(to_jsonb(string_to_array(key, '.')), value));
        END IF;
    END LOOP;
    RETURN CASE WHEN jsonb_array_length(nodes) = 1 THEN nodes -> 0
                ELSE jsonb_build_array('and') || nodes END;
END
$$;

ALTER TABLE destinations
    ADD COLUMN filter jsonb CHECK (jsonb_typeof(filter) = 'object'),
    ADD COLUMN filter_plan jsonb GENERATED ALWAYS AS (courier_filter_plan(filter)) STORED;

-- A plan node against a payload (as jsonb).
CREATE FUNCTION courier_filter_eval(p_node jsonb, p_doc jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    op text := p_node ->> 0;
    found jsonb := p_doc;
    operand jsonb;
    i integer;
BEGIN
    IF op = 'and' THEN
        FOR i IN 1 .. jsonb_array_length(p_node) - 1 LOOP
            IF NOT courier_filter_eval(p_node -> i, p_doc) THEN RETURN false; END IF;
        END LOOP;
        RETURN true;
    ELSIF op = 'or' THEN
        FOR i IN 1 .. jsonb_array_length(p_node) - 1 LOOP
            IF courier_filter_eval(p_node -> i, p_doc) THEN RETURN true; END IF;
        END LOOP;
        RETURN false;
    ELSIF op = 'not' THEN
        RETURN NOT courier_filter_eval(p_node -> 1, p_doc);
    END IF;
    -- Objects only: `#>` would also index arrays.
    FOR i IN 0 .. jsonb_array_length(p_node -> 1) - 1 LOOP
        IF jsonb_typeof(found) <> 'object' THEN RETURN false; END IF;
        found := found -> (p_node -> 1 ->> i);
        IF found IS NULL THEN RETURN false; END IF;
    END LOOP;
    operand := p_node -> 2;
    IF op = 'eq' THEN
        RETURN found = operand;
    ELSIF op = 'exists' THEN
        RETURN true;
    ELSIF op = 'in' THEN
        IF jsonb_typeof(found) NOT IN ('object', 'array') THEN
            -- a scalar in an array's scalar elements (containment compares as `=` does)
            RETURN operand @> jsonb_build_array(found);
        END IF;
        FOR i IN 0 .. jsonb_array_length(operand) - 1 LOOP
            IF operand -> i = found THEN RETURN true; END IF;
        END LOOP;
        RETURN false;
    ELSIF jsonb_typeof(found) <> jsonb_typeof(operand) THEN
        RETURN false;
    ELSIF jsonb_typeof(operand) = 'number' THEN
        RETURN CASE op WHEN 'gt' THEN found > operand
                       WHEN 'gte' THEN found >= operand
                       WHEN 'lt' THEN found < operand
                       ELSE found <= operand END;
    END IF;
    -- strings: "C" is byte order, which for UTF-8 is code point order
    RETURN CASE op WHEN 'gt' THEN (found #>> '{}') COLLATE "C" > (operand #>> '{}')
                   WHEN 'gte' THEN (found #>> '{}') COLLATE "C" >= (operand #>> '{}')
                   WHEN 'lt' THEN (found #>> '{}') COLLATE "C" < (operand #>> '{}')
                   ELSE (found #>> '{}') COLLATE "C" <= (operand #>> '{}') END;
END
$$;

-- What fan-out and recovery call: a destination's filter_plan against the payload's
-- JSON text as stored. A payload jsonb cannot hold (a string with \u0000) matches no
-- filter; only a payload whose text has that escape pays for the guarded conversion.
CREATE FUNCTION courier_filter_matches(p_plan jsonb, p_payload text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    doc jsonb;
BEGIN
    IF strpos(p_payload, '\u0000') > 0 THEN
        BEGIN
            doc := p_payload::jsonb;
        EXCEPTION WHEN untranslatable_character THEN
            RETURN false;
        END;
    ELSE
        doc := p_payload::jsonb;
    END IF;
    RETURN courier_filter_eval(p_plan, doc);
END
$$;
