-- Segments: a named rule over profile attributes (package segment). The rule
-- is stored as its canonical JSON; members are computed when asked, never
-- stored. Names are unique ignoring ASCII case, since each segment becomes a
-- Mailchimp tag. Times are unix microseconds (UTC).
CREATE TABLE segments (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    rule        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX segments_name ON segments (lower(name COLLATE "C"));

-- segsync_instant(v) is the comparison key of a date attribute for rules
-- whose value has a time: the moment in UTC to the second, as
-- 'YYYY-MM-DDThh:mm:ss', or NULL when v is not a JSON string holding a valid
-- date of the form YYYY-MM-DD[Thh:mm[:ss[.f]][Z|±hh:mm]] (years 1000-9999,
-- hours 00-23, offsets up to ±15:59). It must agree with segment.DateKeys in
-- Go, which SQLite calls; the conformance suite checks that it does.
CREATE FUNCTION segsync_instant(v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    y int;
    mo int;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) <> 'string' THEN
        RETURN NULL;
    END IF;
    m := regexp_match(v #>> '{}',
        '^([0-9]{4})-([0-9]{2})-([0-9]{2})(T([0-9]{2}):([0-9]{2})(:([0-9]{2})(\.[0-9]+)?)?(Z|([+-])([0-9]{2}):([0-9]{2}))?)?$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    y := m[1]::int;
    mo := m[2]::int;
    -- Every range is checked here rather than caught as an exception, since
    -- exception blocks cannot run in parallel workers.
    IF y < 1000 OR mo NOT BETWEEN 1 AND 12 OR m[3]::int < 1
        OR m[3]::int > extract(day FROM make_date(y, mo, 1) + interval '1 month' - interval '1 day')
        OR coalesce(m[5], '00')::int > 23 OR coalesce(m[6], '00')::int > 59
        OR coalesce(m[8], '00')::int > 59
        OR coalesce(m[12], '00')::int > 15 OR coalesce(m[13], '00')::int > 59 THEN
        RETURN NULL;
    END IF;
    RETURN to_char(
        make_timestamp(y, mo, m[3]::int,
                       coalesce(m[5], '0')::int, coalesce(m[6], '0')::int, coalesce(m[8], '0')::int)
        - CASE WHEN m[11] IS NULL THEN interval '0'
               ELSE (CASE m[11] WHEN '-' THEN -1 ELSE 1 END)
                    * make_interval(hours => m[12]::int, mins => m[13]::int) END,
        'YYYY-MM-DD"T"HH24:MI:SS');
END
$$;

-- segsync_date(v) is the comparison key for date-only rule values: the
-- calendar date as written, 'YYYY-MM-DD', when v is a valid date (see
-- segsync_instant), else NULL.
CREATE FUNCTION segsync_date(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN segsync_instant(v) IS NOT NULL THEN left(v #>> '{}', 10) END
$$;

-- segsync_hash(v) is the Mailchimp subscriber hash of an e-mail attribute:
-- lowercase hex MD5 of the string with ASCII whitespace trimmed and ASCII
-- letters lowered, NULL when v is not a string or is blank. It must agree
-- with segment.SubscriberHash in Go.
CREATE FUNCTION segsync_hash(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string'
                 AND btrim(v #>> '{}', E' \t\n\x0b\f\r') <> ''
           THEN md5(lower(btrim(v #>> '{}', E' \t\n\x0b\f\r') COLLATE "C")) END
$$;
