"""``isospec record`` on the drivers people use, each pinned
(requirements.txt, clients/node/package-lock.json, Debian's
libpostgresql-jdbc-java): node-postgres, psycopg2, SQLAlchemy 2 over
psycopg 3, pgjdbc and psql.  Every recording checks, replays twice with one
transcript, and the replay shows what the program printed; the
node-postgres pool (four workers, a SKIP LOCKED claim and a client-side
read-modify-write) is recorded 25 times, and no replay may wait out its
step timeout."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import List, Tuple

import isospec
import pytest
from test_record import CLIENTS, check, squeeze, write_sql

REQUIRE_ALL = os.environ.get("ISOSPEC_TESTS_REQUIRE_ALL") == "1"
NODE_DIR = CLIENTS / "node"
JDBC_JAR = Path(os.environ.get("ISOSPEC_TEST_JDBC_JAR", "/usr/share/java/postgresql.jar"))


def need(ok: bool, what: str) -> None:
    """Skips without ``what``, or fails under ISOSPEC_TESTS_REQUIRE_ALL=1 (CI)."""
    if not ok:
        if REQUIRE_ALL:
            pytest.fail(f"{what} is missing (scripts/provision.sh drivers installs it)")
        pytest.skip(f"{what} is missing (scripts/provision.sh drivers installs it)")


def replays(spec: Path, server: str, cwd: Path, db: str, timeout: int = 60) -> Tuple[str, str]:
    """Two replays of ``spec``; neither may hit the step timeout."""
    outs: List[str] = []
    for _ in range(2):
        result = isospec.run([spec], dsn=server, cwd=cwd, dbname=db, timeout=timeout)
        (s,) = result.specs
        assert s.status == "new", (s.status, result.stderr)
        t = s.transcript()
        assert t is not None
        assert "isolationtester: canceling step" not in t, t
        outs.append(t)
    return outs[0], outs[1]


def record(cmd: List[str], spec: str, setup: Path, server: str, cwd: Path, db: str) -> isospec.RecordResult:
    rec = isospec.record(cmd, spec, setup=setup, dsn=server, dbname=db, cwd=cwd)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    check(rec.spec)
    return rec


POOL_SETUP = """\
CREATE TABLE jobs (id int PRIMARY KEY, worker text);
INSERT INTO jobs SELECT g, NULL FROM generate_series(1, 6) g;
CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO counter VALUES (1, 0);
"""


def test_node_postgres_pool_recordings_replay_exactly(server: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    need(node is not None and (NODE_DIR / "node_modules" / "pg").is_dir(), "node with the pinned pg package")
    assert node is not None
    setup = write_sql(tmp_path / "setup.sql", POOL_SETUP)
    timeouts = differing = 0
    for i in range(25):
        rec = isospec.record(
            [node, str(NODE_DIR / "pool_queue.js")], f"pool{i}.spec", setup=setup, dsn=server,
            dbname="record_pool", cwd=tmp_path,
        )
        assert rec.returncode == 0, rec.stdout + rec.stderr
        seen = re.search(r"claimed=(\d+) n=(\d+)", rec.stdout)
        assert seen is not None, rec.stdout
        outs = []
        for _ in range(2):
            result = isospec.run([rec.spec], dsn=server, cwd=tmp_path, dbname="record_pool", timeout=30)
            (s,) = result.specs
            t = s.transcript() or ""
            timeouts += "isolationtester: canceling step" in t
            outs.append(t)
        differing += outs[0] != outs[1]
        # The audit the program printed is the replay's last result.
        assert squeeze(f"claimed|n -------+- {seen[1]}|{seen[2]}") in squeeze(outs[0]), (rec.text, outs[0])
    assert (timeouts, differing) == (0, 0), f"{timeouts} replays timed out, {differing} pairs differed in 25"


def test_psycopg2_literals_with_braces_replay_the_same_rows(server: str, tmp_path: Path) -> None:
    setup = write_sql(tmp_path / "setup.sql", "CREATE TABLE events (id serial PRIMARY KEY, payload jsonb, tags text[], note text);\n")
    rec = record([sys.executable, str(CLIENTS / "psycopg2_braces.py")], "braces.spec", setup, server, tmp_path, "record_braces")
    seen = re.search(r"events=(\d+) digest=(\w+)", rec.stdout)
    assert seen is not None and seen[1] == "4", rec.stdout
    # Nothing left out; the braces spelled as escapes.
    assert not rec.warnings, rec.warnings
    assert "\\x7d" in rec.text and 'U&"the\\007Did"' in rec.text, rec.text
    a, b = replays(rec.spec, server, tmp_path, "record_braces")
    assert a == b
    assert squeeze(f"{seen[1]}|{seen[2]}") in squeeze(a), a


def test_a_worker_killed_in_its_transaction_is_rolled_back_in_the_spec(server: str, tmp_path: Path) -> None:
    setup = write_sql(tmp_path / "setup.sql", "CREATE TABLE acct (id int PRIMARY KEY, n int);\nINSERT INTO acct VALUES (1, 0);\n")
    teardown = write_sql(tmp_path / "teardown.sql", "DROP TABLE acct;\n")
    rec = isospec.record(
        [sys.executable, str(CLIENTS / "psycopg2_killed.py")], "killed.spec", setup=setup, teardown=teardown,
        dsn=server, dbname="record_killed", cwd=tmp_path,
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "worker status=-9 n=10" in rec.stdout, rec.stdout
    ending = (
        r"# the client closed its connection before it said goodbye \(Terminate\); "
        r"the server rolled its transaction back: ROLLBACK\nstep worker_\d \{ ROLLBACK \}"
    )
    assert re.search(ending, rec.text), rec.text
    assert any(w.startswith("session worker: the client closed its connection") for w in rec.warnings), rec.warnings
    # The default step timeout: a replay whose teardown waited on the dead
    # worker's locks would take 300 s and fail.
    result = isospec.run([rec.spec], dsn=server, cwd=tmp_path, dbname="record_killed")
    (s,) = result.specs
    t = s.transcript() or ""
    assert "canceling step" not in t and s.status == "new", t
    assert squeeze("n -- 10") in squeeze(t), t


def test_psycopg2_copy_in_and_out_replay_the_same_rows(server: str, tmp_path: Path) -> None:
    setup = write_sql(tmp_path / "setup.sql", "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);\n")
    rec = record([sys.executable, str(CLIENTS / "psycopg2_copy.py")], "copy.spec", setup, server, tmp_path, "record_copy")
    seen = re.search(r"items=(\d+) priced=(\d+) digest=(\w+)", rec.stdout)
    assert seen is not None and seen[1] == "2010", rec.stdout
    assert not rec.warnings, rec.warnings
    a, b = replays(rec.spec, server, tmp_path, "record_copy")
    assert a == b
    assert squeeze(f"{seen[1]}|{seen[2]}|{seen[3]}") in squeeze(a), a
    # COPY TO STDOUT replays as its SELECT: the same two rows.
    assert squeeze("1|item 1, {x}") in squeeze(a) and squeeze("3001|line\t3001") in squeeze(a), a


def test_sqlalchemy_orm_relationship_insert_replays_and_explores_with_its_ids(server: str, tmp_path: Path) -> None:
    setup = write_sql(
        tmp_path / "setup.sql",
        "CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL);\n"
        "CREATE TABLE lines (id serial PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text NOT NULL);\n",
    )
    teardown = write_sql(tmp_path / "teardown.sql", "DROP TABLE lines;\nDROP TABLE orders;\n")
    rec = isospec.record(
        [sys.executable, str(CLIENTS / "sqlalchemy_orm.py")], "orm.spec", setup=setup, teardown=teardown,
        dsn=server, dbname="record_orm", cwd=tmp_path,
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    check(rec.spec)
    assert "orders=2 lines=6" in rec.stdout, rec.stdout
    # The order's id flows from its INSERT ... RETURNING into its lines.
    assert rec.text.count("WITH isospec_flow AS (INSERT INTO orders") == 2, rec.text
    assert "pg_catalog.current_setting('isospec.v" in rec.text, rec.text
    a, b = replays(rec.spec, server, tmp_path, "record_orm")
    assert a == b
    assert squeeze("count_1 ------- 6") in squeeze(a), a
    # In every other interleaving each order's lines still point at it: no
    # foreign-key error the program could never hit.
    found = isospec.explore(rec.spec, dsn=server, preemptions=2, dbname="record_orm", cwd=tmp_path)
    (s,) = found.specs
    assert s.explored > 1 and s.classes, found.stderr
    failures = [f for c in s.classes for f in c.failures]
    assert not [f for f in failures if f.sqlstate == "23503"], failures


def test_pgjdbc_server_prepared_statements_and_a_wait_replay(server: str, tmp_path: Path) -> None:
    java = shutil.which("java")
    need(java is not None and JDBC_JAR.is_file(), "java with Debian's libpostgresql-jdbc-java")
    assert java is not None
    setup = write_sql(tmp_path / "setup.sql", "CREATE TABLE acct (id int PRIMARY KEY, n int);\nINSERT INTO acct VALUES (1, 1);\n")
    rec = record([java, "-cp", str(JDBC_JAR), str(CLIENTS / "JdbcClient.java")], "jdbc.spec", setup, server, tmp_path, "record_jdbc")
    assert "n=20" in rec.stdout, rec.stdout
    assert "$1" not in rec.text and re.search(r"# waiter_\d waited for a lock; holder_\d released it", rec.text), rec.text
    a, b = replays(rec.spec, server, tmp_path, "record_jdbc")
    assert a == b
    assert "<waiting ...>" in a and squeeze("n -- 20") in squeeze(a), a


def test_psql_gset_and_copy_replay(server: str, tmp_path: Path) -> None:
    psql = shutil.which("psql")
    need(psql is not None, "psql")
    setup = write_sql(tmp_path / "setup.sql", "CREATE TABLE kv (k text PRIMARY KEY, v int);\n")
    (tmp_path / "kv.csv").write_text("a,1\nb,2\n\"c,}\",3\n")
    script = tmp_path / "session.sql"
    script.write_text(
        "\\copy kv FROM 'kv.csv' WITH (FORMAT csv)\n"
        "SELECT max(v) AS top FROM kv \\gset\n"
        "UPDATE kv SET v = v + :top WHERE k = 'a';\n"
        "SELECT k, v FROM kv ORDER BY k;\n"
    )
    rec = record(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(script)], "psql.spec", setup, server, tmp_path, "record_psql")
    assert not rec.warnings, rec.warnings
    assert "UPDATE kv SET v = v + 3 WHERE k = 'a'" in rec.text, rec.text
    a, b = replays(rec.spec, server, tmp_path, "record_psql")
    assert a == b
    assert squeeze("a|4") in squeeze(a) and squeeze("c,}|3") in squeeze(a), a
