"""Tests of the installed isospec wheel: its pytest plugin (through pytest's
own ``pytester``), its Python API and ``python -m isospec``.

The server: the plugin's own ``isospec_server`` fixture, i.e. a temporary
instance started by ``isospec temp-instance`` for this session (or the
server libpq's ``PG*`` variables name).  Inner pytest runs get it with
``--isospec-dsn``; the tests of the temporary-instance path start their own.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Generator, List

import isospec
import pytest

pytest_plugins = ["pytester"]

REQUIRE_ALL = os.environ.get("ISOSPEC_TESTS_REQUIRE_ALL") == "1"

# The published schemas of isospec's JSON documents.
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

_KEEPING_WRAPPER = """#!/bin/sh
# isospec, keeping a copy of the document it writes with --json.
json=
prev=
for a in "$@"; do
  [ "$prev" = "--json" ] && json=$a
  case $a in --json=*) json=${a#--json=} ;; esac
  prev=$a
done
[ -z "$json" ] && exec "{real}" "$@"
# A child, not exec: the copy is made when it ends.  Signals sent to this
# wrapper (the plugin's SIGTERM on -x) are passed on to it.
"{real}" "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM
trap 'kill -INT $child 2>/dev/null' INT
while :; do
  wait $child
  rc=$?
  kill -0 $child 2>/dev/null || break
done
[ -f "$json" ] && cp "$json" "{keep}/$$-$(date +%s%N).json"
exit $rc
"""


def validate_document(path: Path) -> None:
    """Checks an isospec JSON document against the schema its ``format``
    names (docs/schemas/run.schema.json or explore.schema.json)."""
    import jsonschema

    doc = json.loads(path.read_text())
    kind = {"isospec-run": "run", "isospec-explore": "explore"}.get(doc.get("format"))
    assert kind is not None, f"{path}: not an isospec document: {doc!r:.300}"
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
    assert not errors, f"{path} does not follow {kind}.schema.json:\n" + "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


@pytest.fixture(autouse=True)
def json_documents_follow_their_schemas(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Generator[None, None, None]:
    """Every JSON document isospec writes during a test (the plugin's and
    the API's ``run --json`` and ``explore --json``) is checked against its
    published schema when the test ends: ISOSPEC_BIN is a wrapper that
    keeps a copy of each."""
    real = isospec.binary()
    keep = tmp_path_factory.mktemp("isospec-json")
    wrapper = keep / "isospec-keeping-json"
    wrapper.write_text(_KEEPING_WRAPPER.replace("{real}", str(real)).replace("{keep}", str(keep)))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("ISOSPEC_BIN", str(wrapper))
    yield
    for doc in sorted(keep.glob("*.json")):
        validate_document(doc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Under ISOSPEC_TESTS_REQUIRE_ALL=1 (CI) a skipped test fails: no test
    passes CI by not running."""
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_ALL and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped, but ISOSPEC_TESTS_REQUIRE_ALL=1 requires every test to run: {rep.longrepr}"


# A spec whose second session waits for the first (docs' example).
WAIT_SPEC = """\
# Two sessions update one row; the second waits for the first.
setup    { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
setup       { BEGIN; }
step s1upd  { UPDATE t SET v = v + 1 WHERE id = 1; }
step s1c    { COMMIT; }

session s2
step s2upd  { UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v; }

permutation s1upd s2upd s1c
"""

WAIT_OUT = """\
Parsed test spec with 2 sessions

starting permutation: s1upd s2upd s1c
step s1upd: UPDATE t SET v = v + 1 WHERE id = 1;
step s2upd: UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v; <waiting ...>
step s1c: COMMIT;
step s2upd: <... completed>
 v
--
10
(1 row)

"""

# A spec where nothing waits: two counters.
def counter_spec(table: str) -> str:
    return textwrap.dedent(
        f"""\
        setup    {{ CREATE TABLE {table} (n int); INSERT INTO {table} VALUES (0); }}
        teardown {{ DROP TABLE {table}; }}

        session a
        step inc  {{ UPDATE {table} SET n = n + 1; }}

        session b
        step read {{ SELECT n FROM {table}; }}

        permutation inc read
        """
    )


def counter_out(table: str) -> str:
    return textwrap.dedent(
        f"""\
        Parsed test spec with 2 sessions

        starting permutation: inc read
        step inc: UPDATE {table} SET n = n + 1;
        step read: SELECT n FROM {table};
        n
        -
        1
        (1 row)

        """
    )


# A spec that names the test database (isospec -j runs such a spec in the
# --dbname database; the plugin sends it to the xdist worker that keeps the name).
DBNAME_SPEC = "session s\nstep db { SELECT current_database() = 'isolation_regression' AS ours; }\n"
DBNAME_OUT = (
    "Parsed test spec with 1 sessions\n\nstarting permutation: db\n"
    "step db: SELECT current_database() = 'isolation_regression' AS ours;\nours\n----\nt   \n(1 row)\n\n"
)


@dataclass
class Project:
    """A project's specs/ and expected/ in pytester's directory."""

    root: Path

    def spec(self, name: str, text: str, expected: "str | None" = None) -> Path:
        (self.root / "specs").mkdir(exist_ok=True)
        (self.root / "expected").mkdir(exist_ok=True)
        p = self.root / "specs" / f"{name}.spec"
        p.write_text(text)
        if expected is not None:
            (self.root / "expected" / f"{name}.out").write_text(expected)
        return p

    def expected(self, name: str) -> Path:
        return self.root / "expected" / f"{name}.out"

    def standard(self) -> None:
        """Three passing specs."""
        self.spec("wait", WAIT_SPEC, WAIT_OUT)
        self.spec("counter_a", counter_spec("ca"), counter_out("ca"))
        self.spec("counter_b", counter_spec("cb"), counter_out("cb"))

    def break_expected(self, name: str) -> None:
        p = self.expected(name)
        p.write_text(p.read_text().replace("(1 row)", "(2 rows)"))


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester.path)


@pytest.fixture(scope="session")
def server(isospec_server: str) -> str:
    """The conninfo of this session's server (the plugin's own fixture)."""
    return isospec_server


@pytest.fixture
def logged_isospec(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ISOSPEC_BIN: a wrapper that logs each isospec command line (one per
    line) to the returned file, then runs the real binary."""
    real = isospec.binary()
    log = pytester.path / "isospec-commands.log"
    wrapper = pytester.path / "isospec-logged"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("ISOSPEC_BIN", str(wrapper))
    return log


def run_commands(log: Path) -> List[str]:
    """The `isospec run` command lines in the wrapper's log."""
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if ln.startswith("run ")]


def junit_outcomes(path: Path) -> Dict[str, str]:
    """Each testcase's outcome in a JUnit XML file: passed, failed, error, skipped."""
    tree = ET.parse(path)
    out = {}
    for tc in tree.iter("testcase"):
        kind = "passed"
        for tag in ("failure", "error", "skipped"):
            if tc.find(tag) is not None:
                kind = {"failure": "failed"}.get(tag, tag)
        out[tc.get("name", "")] = kind
    return out


def no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PG* variable names a server (so the plugin starts its own)."""
    for v in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGSERVICE", "PGPASSWORD", "ISOSPEC_CONNINFO"):
        monkeypatch.delenv(v, raising=False)


def have_xdist() -> bool:
    try:
        import xdist  # type: ignore[import-untyped] # noqa: F401
    except ImportError:
        return False
    return True


def python_bin_dir() -> Path:
    return Path(os.path.abspath(sys.executable)).parent

