#!/usr/bin/env python3
"""Prints specs/contention-refresh-queue.spec: 100 sessions insert through a
trigger that enqueues a de-duplicated refresh of a summary row."""

from specgen import Spec

SESSIONS = 100
GROUPS = 5

spec = Spec("contention-refresh-queue.py", f"""
Question: {SESSIONS} sessions insert into `item` at the same time; an AFTER INSERT
trigger enqueues a refresh of the row's group in `refresh_queue`,
de-duplicated by key (INSERT ... ON CONFLICT (grp) DO NOTHING).  Under that
contention, is any group queued (and so refreshed) twice, who waits for whom,
and does the summary the refresher writes equal a recount of `item`?

What the transcript shows: the first inserter of each of the {GROUPS} groups
(s1..s{GROUPS}) queues it at once; every later inserter of a group waits, in
its trigger, for that session's transaction (the queue's unique key is
taken by an uncommitted row).  When the first inserter commits, all waiters
of its group go on together and queue nothing (the key is committed).  The
refresher then refreshes each group exactly once, a second refresh finds
nothing to do, and the summary equals the recount.
No sleeps: every wait is the server's unique-index wait.
""")

spec.block("setup", """
CREATE TABLE item (id int PRIMARY KEY, grp int NOT NULL, amount int NOT NULL);
CREATE TABLE refresh_queue (grp int PRIMARY KEY, queued_by int NOT NULL);
CREATE TABLE refresh_log (grp int NOT NULL, queued_by int NOT NULL);
CREATE TABLE summary (grp int PRIMARY KEY, total bigint NOT NULL, items int NOT NULL);
CREATE FUNCTION queue_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO refresh_queue VALUES (NEW.grp, NEW.id) ON CONFLICT (grp) DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER item_queue_refresh AFTER INSERT ON item
  FOR EACH ROW EXECUTE FUNCTION queue_refresh();
""")
spec.block("teardown", """
DROP TABLE item, refresh_queue, refresh_log, summary;
DROP FUNCTION queue_refresh();
""")

for i in range(1, SESSIONS + 1):
    spec.session(f"s{i}", [
        (f"b{i}", "BEGIN;"),
        (f"i{i}", f"INSERT INTO item VALUES ({i}, {i % GROUPS}, {i});"),
        (f"c{i}", "COMMIT;"),
    ], comment="An inserter: item i goes to group i % 5." if i == 1 else None)

spec.session("r", [
    ("refresh", "WITH q AS (DELETE FROM refresh_queue RETURNING grp, queued_by), "
     "logged AS (INSERT INTO refresh_log SELECT grp, queued_by FROM q) "
     "INSERT INTO summary SELECT grp, sum(amount), count(*) FROM item WHERE grp IN (SELECT grp FROM q) "
     "GROUP BY grp ON CONFLICT (grp) DO UPDATE SET total = EXCLUDED.total, items = EXCLUDED.items;"),
    ("log", "SELECT grp, queued_by FROM refresh_log ORDER BY grp;"),
    ("check", "SELECT (SELECT count(*) FROM refresh_log) AS refreshes, "
     "(SELECT count(DISTINCT grp) FROM refresh_log) AS groups_refreshed, "
     "(SELECT count(*) FROM refresh_queue) AS still_queued, "
     "(SELECT bool_and(s.total = r.total AND s.items = r.items) FROM summary s "
     "FULL JOIN (SELECT grp, sum(amount) AS total, count(*) AS items FROM item GROUP BY grp) r USING (grp)) "
     "AS summary_equals_recount;"),
], comment="The refresher: takes the whole queue, logs what it refreshes, recomputes those groups.")

ids = range(1, SESSIONS + 1)
spec.permutation([f"b{i}" for i in ids] + [f"i{i}" for i in ids] + [f"c{i}" for i in ids]
                 + ["refresh", "refresh", "log", "check"],
                 comment="All insert inside open transactions, then all commit in order; then the refresher\n"
                 "runs twice (the second run must find nothing to refresh).")
spec.write()
