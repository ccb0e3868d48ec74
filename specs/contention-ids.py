#!/usr/bin/env python3
"""Prints specs/contention-ids.spec: many sessions take ids at once from a
sequence, from max(id) + 1 and from an INSERT ... ON CONFLICT counter."""

from specgen import Spec

N = 10  # sessions per way of taking an id

spec = Spec("contention-ids.py", f"""
Question: {4 * N} sessions take "the next id" inside their transactions at the
same time, {N} in each of four ways.  Which ways collide, which wait, and
which hand out each id exactly once?
- seq: nextval() on a sequence.  Nobody waits, no id repeats, even across
  a rollback (the sequence does not go back: a gap is left).
- max: INSERT ... SELECT max(id) + 1 on a table without a unique index.
  Nobody waits and the ids collide: every session that read max(id) before
  the previous ones committed takes the same id.
- uniq: the same on a table with a primary key.  The first takes the id;
  the others computing the same id wait for it and, when it commits, fail
  with a duplicate key error (a rollback would let them through instead).
- ctr: INSERT INTO counter ... ON CONFLICT (k) DO UPDATE SET n = n + 1.
  Each session waits for the one before it to commit, then gets the next
  number: every number exactly once, but the sessions go one at a time.
In each way the sessions run in two waves of {N // 2}: the first wave takes its
ids inside open transactions, then commits, then the second wave.
""")

spec.block("setup", """
CREATE SEQUENCE ids;
CREATE TABLE by_seq (id bigint NOT NULL, who text NOT NULL);
CREATE TABLE by_max (id int NOT NULL, who text NOT NULL);
CREATE TABLE by_uniq (id int PRIMARY KEY, who text NOT NULL);
CREATE TABLE counter (k int PRIMARY KEY, n int NOT NULL);
""")
spec.block("teardown", """
DROP TABLE by_seq, by_max, by_uniq, counter;
DROP SEQUENCE ids;
""")

WAYS = {
    "seq": lambda w: f"INSERT INTO by_seq VALUES (nextval('ids'), '{w}') RETURNING id;",
    "max": lambda w: f"INSERT INTO by_max SELECT coalesce(max(id), 0) + 1, '{w}' FROM by_max RETURNING id;",
    "uniq": lambda w: f"INSERT INTO by_uniq SELECT coalesce(max(id), 0) + 1, '{w}' FROM by_uniq RETURNING id;",
    "ctr": lambda w: "INSERT INTO counter VALUES (1, 1) ON CONFLICT (k) DO UPDATE SET n = counter.n + 1 RETURNING n;",
}
for way, sql in WAYS.items():
    for i in range(1, N + 1):
        s = f"{way}{i}"
        # The second sequence session rolls back: its id is not reused.
        end = "ROLLBACK;" if (way, i) == ("seq", 2) else "COMMIT;"
        spec.session(s, [(f"{s}b", "BEGIN;"), (f"{s}id", sql(s)), (f"{s}c", end)],
                     comment=f"The {way} way." if i == 1 else None)

spec.session("o", [
    ("ids", "SELECT 'seq' AS way, count(*) AS taken, count(DISTINCT id) AS distinct_ids, max(id) FROM by_seq "
     "UNION ALL SELECT 'max', count(*), count(DISTINCT id), max(id) FROM by_max "
     "UNION ALL SELECT 'uniq', count(*), count(DISTINCT id), max(id) FROM by_uniq "
     "UNION ALL SELECT 'ctr', 1, 1, n FROM counter;"),
    ("dups", "SELECT id, string_agg(who, ',' ORDER BY who) AS taken_by FROM by_max GROUP BY id ORDER BY id;"),
], comment="The observer: how many ids each way handed out, and who took the same id.")

steps = []
half = N // 2
for wave in (range(1, half + 1), range(half + 1, N + 1)):
    for way in ("seq", "max", "uniq"):
        steps += [f"{way}{i}b" for i in wave] + [f"{way}{i}id" for i in wave] + [f"{way}{i}c" for i in wave]
# The counter: each session's upsert waits for the previous session, which
# then commits (one waiter at a time: who goes next is never a race).
steps += [f"ctr{i}b" for i in range(1, N + 1)] + ["ctr1id"]
for i in range(2, N + 1):
    steps += [f"ctr{i}id", f"ctr{i - 1}c"]
steps += [f"ctr{N}c", "ids", "dups"]
spec.permutation(steps, comment="Two waves per way; the counter sessions hand over one by one.")
spec.write()
