-- isospec_demo 1.0: named counters and a work queue.
\echo Use "CREATE EXTENSION isospec_demo" to load this file. \quit

CREATE TABLE isospec_demo_counter (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);

-- The next value of counter NAME (1 for a new one).  Concurrent callers
-- queue on the counter's row and each gets a distinct value.
CREATE FUNCTION isospec_demo_next(name text) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO isospec_demo_counter AS c (name, value) VALUES (name, 1)
    ON CONFLICT (name) DO UPDATE SET value = c.value + 1
    RETURNING value
$$;

CREATE TABLE isospec_demo_job (
    id      int PRIMARY KEY,
    payload text NOT NULL,
    done    boolean NOT NULL DEFAULT false
);

-- Claims the first job nobody else holds, without waiting for the others.
CREATE FUNCTION isospec_demo_claim() RETURNS int
LANGUAGE sql AS $$
    UPDATE isospec_demo_job SET done = true
    WHERE id = (SELECT id FROM isospec_demo_job WHERE NOT done
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
$$;
