#!/usr/bin/env python3
"""Prints specs/contention-cascade.spec: 50 sessions update parent rows and 50
update child rows while triggers cascade both into a derived table."""

from specgen import Spec

N = 50  # parents, children, parent sessions and child sessions

spec = Spec("contention-cascade.py", f"""
Question: {N} sessions update parent rows and {N} update child rows at the same
time, while triggers cascade every change into `derived` (one row per
parent: the parent's value plus its children's).  Which sessions wait for
which, and is the derived table consistent afterwards?

Two ways of cascading are compared, both in AFTER UPDATE triggers:
- `derived_recount` is recomputed (total = parent's val + sum of the
  children's vals, read by subqueries), first;
- `derived` is maintained incrementally (total = total + NEW.val - OLD.val),
  in the next statement.
Parent i has child i.  For odd i the parent session updates first and the
child session waits for it on parent i's derived_recount row; for even i
the child session goes first and the parent session waits.  When the first
commits, the waiter re-checks the row it waited for (READ COMMITTED) and
updates the newest version -- but the subqueries in its SET still see the
snapshot its statement started with, before that commit; its next
statement takes a new snapshot.  So `derived` ends consistent with a recount for
every parent, and `derived_recount` loses the first committer's change for
every parent: recomputing from a snapshot inside a trigger is not safe
under concurrency, however it is ordered.
The `waits` step shows the wait graph while all {N} waits are in place.
""")

spec.block("setup", f"""
CREATE TABLE parent (id int PRIMARY KEY, val int NOT NULL);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, val int NOT NULL);
CREATE TABLE derived (parent_id int PRIMARY KEY, total int NOT NULL);
CREATE TABLE derived_recount (parent_id int PRIMARY KEY, total int NOT NULL);
CREATE TABLE who (session text PRIMARY KEY, pid int NOT NULL);
INSERT INTO parent SELECT g, 0 FROM generate_series(1, {N}) g;
INSERT INTO child SELECT g, g, 0 FROM generate_series(1, {N}) g;
INSERT INTO derived SELECT id, 0 FROM parent;
INSERT INTO derived_recount SELECT id, 0 FROM parent;
CREATE FUNCTION parent_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE derived_recount SET total = NEW.val + (SELECT sum(val) FROM child WHERE parent_id = NEW.id)
    WHERE parent_id = NEW.id;
  UPDATE derived SET total = total + NEW.val - OLD.val WHERE parent_id = NEW.id;
  RETURN NULL;
END $$;
CREATE FUNCTION child_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE derived_recount SET total = (SELECT val FROM parent WHERE id = NEW.parent_id)
    + (SELECT sum(val) FROM child WHERE parent_id = NEW.parent_id) WHERE parent_id = NEW.parent_id;
  UPDATE derived SET total = total + NEW.val - OLD.val WHERE parent_id = NEW.parent_id;
  RETURN NULL;
END $$;
CREATE TRIGGER parent_cascade AFTER UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION parent_cascade();
CREATE TRIGGER child_cascade AFTER UPDATE ON child FOR EACH ROW EXECUTE FUNCTION child_cascade();
""")
spec.block("teardown", """
DROP TABLE child, parent, derived, derived_recount, who;
DROP FUNCTION parent_cascade(), child_cascade();
""")

for i in range(1, N + 1):
    spec.session(f"p{i}", [
        (f"pb{i}", "BEGIN;"),
        (f"pu{i}", f"UPDATE parent SET val = val + {100 * i} WHERE id = {i};"),
        (f"pc{i}", "COMMIT;"),
    ], setup=f"INSERT INTO who VALUES ('p{i}', pg_backend_pid());",
        comment=f"Parent session i adds 100 * i to parent i." if i == 1 else None)
for i in range(1, N + 1):
    spec.session(f"c{i}", [
        (f"cb{i}", "BEGIN;"),
        (f"cu{i}", f"UPDATE child SET val = val + {i} WHERE id = {i};"),
        (f"cc{i}", "COMMIT;"),
    ], setup=f"INSERT INTO who VALUES ('c{i}', pg_backend_pid());",
        comment="Child session i adds i to child i (of parent i)." if i == 1 else None)

spec.session("observer", [
    ("waits", "SELECT w.session AS waiter, string_agg(b.session, ',' ORDER BY b.session) AS waits_for "
     "FROM who w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid) JOIN who b ON b.pid = bp.pid "
     "GROUP BY w.session ORDER BY substr(w.session, 1, 1), substr(w.session, 2)::int;"),
    ("check", "SELECT count(*) FILTER (WHERE d.total = r.total) AS derived_consistent, "
     "count(*) FILTER (WHERE dr.total = r.total) AS recount_consistent, count(*) AS parents "
     "FROM (SELECT p.id, p.val + sum(c.val) AS total FROM parent p JOIN child c ON c.parent_id = p.id GROUP BY p.id) r "
     "JOIN derived d ON d.parent_id = r.id JOIN derived_recount dr ON dr.parent_id = r.id;"),
    ("lost", "SELECT r.id AS parent, r.total AS recount, dr.total AS derived_recount "
     "FROM (SELECT p.id, p.val + sum(c.val) AS total FROM parent p JOIN child c ON c.parent_id = p.id GROUP BY p.id) r "
     "JOIN derived_recount dr ON dr.parent_id = r.id WHERE dr.total <> r.total AND r.id <= 4 ORDER BY r.id;"),
], comment="Who waits for whom (pg_blocking_pids, named through `who`), then the final state:\n"
           "how many derived rows equal a recount, and the first lost updates.")

ids = range(1, N + 1)
odd = [i for i in ids if i % 2]
even = [i for i in ids if not i % 2]
first = [f"pu{i}" for i in odd] + [f"cu{i}" for i in even]
second = [f"cu{i}" for i in odd] + [f"pu{i}" for i in even]
commits = [f"pc{i}" for i in odd] + [f"cc{i}" for i in even]
then = [f"cc{i}" for i in odd] + [f"pc{i}" for i in even]
spec.permutation([f"pb{i}" for i in ids] + [f"cb{i}" for i in ids] + first + second
                 + ["waits"] + commits + then + ["check", "lost"],
                 comment="Everyone begins; the first updater of each parent goes, then the other\n"
                 "(who waits); the wait graph; the first updaters commit (each releasing its\n"
                 "waiter), then the others; then the final state.")
spec.write()
