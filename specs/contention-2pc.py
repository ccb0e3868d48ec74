#!/usr/bin/env python3
"""Prints specs/contention-2pc.spec: 20 sessions each hold a prepared
transaction; other sessions commit half of them and roll back the rest."""

from specgen import Spec

N = 20

spec = Spec("contention-2pc.py", f"""
Question: {N} sessions each settle one ledger row and write an audit row in a
transaction they PREPARE (two-phase commit), so {N} prepared transactions are
pending at once.  What do other sessions see and get while they are, and
after other sessions COMMIT PREPARED half of them and ROLLBACK PREPARED the
other half, in an interleaved order: do exactly half of the rows remain, and
is no prepared transaction left behind?

What the transcript shows: while all {N} are prepared, nothing they wrote is
visible, their row locks outlive their sessions (a SKIP LOCKED worker finds
no open row, NOWAIT fails at once), and pg_prepared_xacts lists {N}.  Each
session t(k-1) then resolves t(k)'s transaction (t{N} resolves t1's): odd k
committed, even k rolled back.  Afterwards exactly half of the audit rows
exist, the rolled-back half of the ledger is open again (and now
SKIP-LOCKable), and no prepared transaction is left.
Nobody waits on a prepared transaction here (isolationtester cannot see such
a wait), so the spec runs the same under isolationtester.

Needs max_prepared_transactions >= {N} on the server: `make check-isolation`
gives its temporary instance conf/isolation.conf (max_prepared_transactions =
{N + 5}); against your own server (make installcheck-isolation), set it in
postgresql.conf and restart.
""")

spec.block("setup", f"""
CREATE TABLE ledger (id int PRIMARY KEY, state text NOT NULL);
CREATE TABLE audit (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO ledger SELECT g, 'open' FROM generate_series(1, {N}) g;
""")
spec.block("teardown", """
DROP TABLE ledger, audit;
""")


def gid(k):
    return f"'isospec-contention-2pc-{k}'"


for i in range(1, N + 1):
    k = i % N + 1  # the transaction this session resolves
    resolve = "COMMIT PREPARED" if k % 2 else "ROLLBACK PREPARED"
    spec.session(f"t{i}", [
        (f"b{i}", "BEGIN;"),
        (f"w{i}", f"UPDATE ledger SET state = 'settled' WHERE id = {i}; INSERT INTO audit VALUES ({i}, 'settled by t{i}');"),
        (f"p{i}", f"PREPARE TRANSACTION {gid(i)};"),
        (f"r{i}", f"{resolve} {gid(k)};"),
    ], comment="Session i prepares its own transaction, then resolves session i+1's." if i == 1 else None)

spec.session("o", [
    ("visible", "SELECT (SELECT count(*) FROM audit) AS audit_rows, "
     "(SELECT count(*) FROM ledger WHERE state = 'settled') AS settled, "
     "(SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'isospec-contention-2pc-%') AS prepared;"),
    ("skip", "SELECT id FROM ledger WHERE state = 'open' ORDER BY id FOR UPDATE SKIP LOCKED;"),
    ("nowait", "SELECT id FROM ledger WHERE id = 1 FOR UPDATE NOWAIT;"),
    ("audit", "SELECT id, note FROM audit ORDER BY id;"),
], comment="An observer: what is visible, SKIP LOCKED and NOWAIT against the prepared transactions' row locks.")

ids = range(1, N + 1)
# Resolve in an interleaved order: the sessions resolving odd k (commits),
# then those resolving even k (rollbacks).
resolvers = [i for i in ids if (i % N + 1) % 2] + [i for i in ids if not (i % N + 1) % 2]
spec.permutation([f"b{i}" for i in ids] + [f"w{i}" for i in ids] + [f"p{i}" for i in ids]
                 + ["visible", "skip", "nowait"] + [f"r{i}" for i in resolvers]
                 + ["visible", "skip", "audit"],
                 comment="All prepare; the observer looks; the commits, then the rollbacks; the observer\n"
                 "looks again.")
spec.write()
