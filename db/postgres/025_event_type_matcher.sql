-- The event-type matcher, defined once: fan-out (enqueue_events), outage recovery and
-- its dry run call it. A destination's event_types match an event type when the list is
-- empty, names the type exactly, holds `*`, or holds `<prefix>.*` with the type starting
-- with `<prefix>.` (plain text comparison: a prefix may itself contain dots).
--
-- LANGUAGE sql, one expression with no subquery, no volatility beyond what it declares:
-- the planner inlines it into the calling statement, so the fan-out plan stays what the
-- inline SQL gave (a function it cannot inline would run as a call per event and
-- destination). STABLE, not IMMUTABLE: to_jsonb is STABLE, and an IMMUTABLE function
-- whose body is not is never inlined. Without a subquery
-- the `<prefix>.*` test cannot walk the array, so it asks one regular expression of the
-- array's JSON text: an element, quoted, that is the JSON form of one of the type's
-- dot-ended prefixes followed by `*`. JSON quotes and escapes every element, so an
-- element boundary (`[` or `, ` then an unescaped quote) cannot be faked by an
-- element's own text. The expression is built from the type alone (so PostgreSQL's
-- compiled-expression cache serves every destination of one type): each non-alphanumeric
-- character is escaped, and each dot opens an optional group, so `a.b.c` asks for
-- `a.*` or `a.b.*`.
CREATE FUNCTION courier_event_type_matches(p_patterns text[], p_type text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT cardinality(p_patterns) = 0
    OR p_type = ANY (p_patterns)
    OR '*' = ANY (p_patterns)
    OR (strpos(p_type, '.') > 0
        AND to_jsonb(p_patterns)::text ~ (
            '(?:\[|, )'
            || replace(
                   regexp_replace(
                       left(to_jsonb(regexp_replace(p_type, '[^.]*$', ''))::text, -1),
                       '([^[:alnum:]])', '\\\1', 'g'),
                   '\.', '\.(?:')
            || repeat(')?', length(p_type) - length(replace(p_type, '.', '')))
            || '\*"'))
$$;
