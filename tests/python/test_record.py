"""``isospec record`` with real drivers: a psycopg 3 thread-pool test
(the flaky kind this project exists for), psycopg's text, binary and
pipeline modes, and asyncpg (binary protocol, prepared statements, its
introspection queries).  Each recorded spec checks, replays twice with one
transcript that shows what the program saw, and the thread-pool one lets
explore find the duplicate ids the program only sometimes shows."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import isospec
import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"


def replay_twice(spec: Path, server: str, cwd: Path, db: str) -> str:
    """Runs ``spec`` twice; both transcripts must be the same."""
    outs: List[str] = []
    for _ in range(2):
        result = isospec.run([spec], dsn=server, cwd=cwd, dbname=db)
        (s,) = result.specs
        assert s.status == "new", (s.status, result.stderr)
        t = s.transcript()
        assert t is not None
        outs.append(t)
    assert outs[0] == outs[1]
    return outs[0]


def squeeze(s: str) -> str:
    return re.sub(r"\s+", "", s)


def check(spec: Path) -> None:
    proc = subprocess.run([str(isospec.binary()), "check", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def write_sql(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def record_client(script: str, spec: str, setup: Path, server: str, cwd: Path, db: str) -> isospec.RecordResult:
    """Records one of ``clients/`` with this interpreter (it has the drivers)."""
    rec = isospec.record(
        [sys.executable, str(CLIENTS / script)], spec, setup=setup, dsn=server, dbname=db, cwd=cwd
    )
    assert rec.returncode == 0, rec.stderr
    return rec


def test_a_thread_pool_test_becomes_a_spec_that_replays_and_explores(server: str, tmp_path: Path) -> None:
    setup = write_sql(
        tmp_path / "setup.sql",
        """\
        CREATE TABLE commits (id int NOT NULL, author text NOT NULL);
        CREATE FUNCTION next_commit_id() RETURNS int LANGUAGE sql
          AS $$ SELECT coalesce(max(id), 0) + 1 FROM commits $$;
        """,
    )
    teardown = write_sql(tmp_path / "teardown.sql", "DROP TABLE commits;\nDROP FUNCTION next_commit_id();\n")
    rec = isospec.record(
        [sys.executable, str(CLIENTS / "ids.py")],
        "ids.spec",
        setup=setup,
        teardown=teardown,
        dsn=server,
        dbname="record_ids",
        cwd=tmp_path,
    )
    assert rec.returncode == 0, rec.stderr
    assert isinstance(rec, isospec.RecordResult)
    assert rec.spec == tmp_path / "ids.spec" and (rec.sessions, rec.steps) == (5, 19)
    seen = re.search(r"commits: (\d+), distinct ids: (\d+)", rec.stdout)
    assert seen is not None, rec.stdout
    text = rec.text
    assert "$1" not in text and "'w0'::text" in text
    assert "Values the client computed from earlier results are frozen" in text
    check(rec.spec)
    transcript = replay_twice(rec.spec, server, tmp_path, "record_ids")
    # The audit line the program printed, in the replay.
    audit = transcript.split("SELECT count(*), count(DISTINCT id) FROM commits", 1)[1]
    assert squeeze(audit).startswith(squeeze(f"count|count -----+----- {seen[1]}|{seen[2]}")), transcript
    found = isospec.explore(
        rec.spec,
        dsn=server,
        preemptions=1,
        invariant=["SELECT count(*) = count(DISTINCT id) FROM commits"],
        dbname="record_ids",
        cwd=tmp_path,
    )
    assert found.returncode == 1
    (s,) = found.specs
    assert s.violations, [c.description for c in s.classes]


def test_psycopg_text_binary_and_pipeline_replay_what_the_program_saw(server: str, tmp_path: Path) -> None:
    setup = write_sql(
        tmp_path / "setup.sql",
        """\
        CREATE TABLE kinds (id int, t text, f float8, n numeric, d date, a text[], z int);
        CREATE TABLE extra (u uuid, b bytea, ts timestamptz, j jsonb, ok bool, ints int8[]);
        """,
    )
    rec = record_client("psycopg_modes.py", "modes.spec", setup, server, tmp_path, "record_modes")
    assert "pipeline: division by zero" in rec.stdout
    table = re.search(r"^table: (.*)$", rec.stdout, re.M)
    assert table is not None
    text = rec.text
    assert "$1" not in text
    # Binary parameters decoded, strings with a brace escaped for the spec.
    assert "'12345678-9abc-def0-0102-030405060708'::uuid" in text
    assert "'12345678901234567890.5'::numeric" in text
    assert "'2026-12-07 04:51:29.1234+00'::timestamp with time zone" in text
    assert "E'it''s \\x7btext\\x7d'::text" in text
    # The pipeline is one step: its insert and the failing select, as the
    # server ran them (one implicit transaction); the last insert too when
    # psycopg sent it before the error came back (the server skipped it,
    # and so does the step).
    assert re.search(
        r"step piped_1 \{ INSERT INTO kinds .*;\nSELECT 1 / \('0'::smallint\)(;\nINSERT INTO kinds .*'never'::text\)\))? \}", text
    ), text
    check(rec.spec)
    transcript = replay_twice(rec.spec, server, tmp_path, "record_modes")
    assert "ERROR:  division by zero" in transcript
    assert squeeze(table[1]) in squeeze(transcript)


def test_asyncpg_prepared_statements_and_introspection_replay(server: str, tmp_path: Path) -> None:
    setup = write_sql(
        tmp_path / "setup.sql",
        """\
        CREATE TYPE mood AS ENUM ('red', 'blue');
        CREATE TABLE apg (id int, label text, ints int[], at timestamptz, mood mood);
        """,
    )
    rec = record_client("asyncpg_client.py", "apg.spec", setup, server, tmp_path, "record_apg")
    table = re.search(r"^table: (.*)$", rec.stdout, re.M)
    assert table is not None
    text = rec.text
    assert "$1" not in text and "session apg" in text
    assert "WITH RECURSIVE typeinfo_tree" in text  # asyncpg's own introspection
    assert "('red'::mood)" in text and "(ARRAY[]::integer[])" in text
    # fetchval: one row of a read-only query, fetched with a row limit.
    assert ") AS fetched LIMIT 1 }" in text
    check(rec.spec)
    transcript = replay_twice(rec.spec, server, tmp_path, "record_apg")
    assert squeeze(table[1]) in squeeze(transcript)


def test_record_says_why_no_spec_was_written(server: str, tmp_path: Path) -> None:
    bad = write_sql(tmp_path / "bad.sql", "CREATE TABLE (;\n")
    with pytest.raises(isospec.IsospecError) as e:
        isospec.record(["true"], "x.spec", setup=bad, dsn=server, dbname="record_bad", cwd=tmp_path)
    assert "the setup (" in str(e.value) and "syntax error" in str(e.value)
    assert not (tmp_path / "x.spec").exists()
