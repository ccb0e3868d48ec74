"""The pytest plugin, run as users run it: pytest in a subprocess over a
project's specs/ and expected/ (pytester)."""

from __future__ import annotations

import re
import shutil
import subprocess
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import isospec
import pytest
from conftest import (
    DBNAME_OUT,
    DBNAME_SPEC,
    WAIT_OUT,
    WAIT_SPEC,
    Project,
    counter_out,
    counter_spec,
    have_xdist,
    junit_outcomes,
    no_server_env,
    run_commands,
)

TIMEOUT = 600


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, timeout=TIMEOUT)


def test_passing_specs_pass_in_one_isospec_run(
    pytester: pytest.Pytester, project: Project, server: str, logged_isospec: Path
) -> None:
    project.standard()
    result = run(pytester, "specs/", "--isospec-dsn", server, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["specs/counter_a.spec::counter_a PASSED*", "specs/wait.spec::wait PASSED*"])
    runs = run_commands(logged_isospec)
    assert len(runs) == 1, runs
    assert "--json" in runs[0] and "--tap" in runs[0]
    for name in ("counter_a", "counter_b", "wait"):
        assert f"specs/{name}.spec" in runs[0]
        assert (pytester.path / "results" / f"{name}.out").is_file()


def test_broken_expected_file_fails_with_its_diff(
    pytester: pytest.Pytester, project: Project, server: str
) -> None:
    project.standard()
    project.break_expected("wait")
    result = run(pytester, "specs/", "--isospec-dsn", server)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*isospec: wait*",
            "wait: the transcript differs from expected/wait.out",
            "  where:    permutation 1 of 1 (s1upd s2upd s1c), step s2upd*",
            "  at:       specs/wait.spec:*",
            "  expected: (2 rows)",
            "  actual:   (1 row)",
            "  result:   results/wait.out",
            "  accept:   pytest --isospec-accept specs/wait.spec::wait*",
            "diff -U3 expected/wait.out *results/wait.out",
            "-(2 rows)",
            "+(1 row)",
            "FAILED specs/wait.spec::wait - *",
        ]
    )
    # regression.diffs as isospec run leaves it.
    assert "-(2 rows)" in (pytester.path / "regression.diffs").read_text()


def test_new_spec_fails_with_its_transcript_and_the_accept_hint(
    pytester: pytest.Pytester, project: Project, server: str
) -> None:
    project.spec("fresh", WAIT_SPEC)  # no expected file
    result = run(pytester, "specs/", "--isospec-dsn", server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "fresh: new spec: no expected output yet (expected/fresh.out does not exist)",
            "  result:   results/fresh.out",
            "  accept:   review the transcript below, then: pytest --isospec-accept specs/fresh.spec::fresh",
            "*isospec accept fresh*",
            "transcript (results/fresh.out):",
            "Parsed test spec with 2 sessions",
            "step s2upd: UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v; <waiting ...>",
            "FAILED specs/fresh.spec::fresh - fresh: new spec*",
        ]
    )
    assert not project.expected("fresh").exists()


def test_isospec_accept_accepts(pytester: pytest.Pytester, project: Project, server: str) -> None:
    project.spec("fresh", WAIT_SPEC)
    project.spec("wait", WAIT_SPEC, WAIT_OUT)
    project.break_expected("wait")
    result = run(pytester, "specs/", "--isospec-dsn", server, "--isospec-accept")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*isospec: accepted transcripts*"])
    assert project.expected("fresh").read_text() == WAIT_OUT
    assert project.expected("wait").read_text() == WAIT_OUT
    # Accepted for good: the next session passes without it.
    run(pytester, "specs/", "--isospec-dsn", server).assert_outcomes(passed=2)


def test_junit_xml_is_valid_and_failures_carry_the_diff(
    pytester: pytest.Pytester, project: Project, server: str
) -> None:
    project.standard()
    project.break_expected("counter_b")
    result = run(pytester, "specs/", "--isospec-dsn", server, "--junitxml=report.xml")
    result.assert_outcomes(passed=2, failed=1)
    tree = ET.parse(pytester.path / "report.xml")  # well-formed, or this raises
    cases = {tc.get("name"): tc for tc in tree.iter("testcase")}
    assert set(cases) == {"wait", "counter_a", "counter_b"}
    failure = cases["counter_b"].find("failure")
    assert failure is not None
    assert failure.text is not None
    assert "diff -U3 expected/counter_b.out" in failure.text
    assert "-(2 rows)" in failure.text and "+(1 row)" in failure.text
    assert "counter_b" in failure.get("message", "")
    assert cases["wait"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["counter_b"].iter("property")}
    assert props["isospec_status"] == "failed"
    assert str(props["isospec_result_file"]).endswith("results/counter_b.out")


def test_xdist_gives_the_same_outcome_one_run_and_database_per_worker(
    pytester: pytest.Pytester, project: Project, server: str, logged_isospec: Path
) -> None:
    if not have_xdist():
        pytest.skip("pytest-xdist is not installed")
    project.standard()
    project.spec("counter_c", counter_spec("cc"), counter_out("cc"))
    project.break_expected("counter_a")
    project.spec("fresh", WAIT_SPEC)
    project.spec("zz_dbname", DBNAME_SPEC, DBNAME_OUT)

    serial = run(pytester, "specs/", "--isospec-dsn", server, "--junitxml=serial.xml")
    serial.assert_outcomes(passed=4, failed=2)
    serial_diffs = (pytester.path / "regression.diffs").read_text()
    logged_isospec.unlink()

    parallel = run(pytester, "specs/", "--isospec-dsn", server, "-n", "2", "--junitxml=parallel.xml")
    parallel.assert_outcomes(passed=4, failed=2)
    assert junit_outcomes(pytester.path / "serial.xml") == junit_outcomes(pytester.path / "parallel.xml")
    parallel.stdout.fnmatch_lines(["*-(2 rows)*", "*+(1 row)*"])

    # One isospec run per worker, each in its own database of the shared
    # server (gw0 keeps the name, and runs the spec that names it),
    # together covering every spec once.
    runs = run_commands(logged_isospec)
    assert len(runs) == 2, runs
    dbs = {r.split("--dbname ", 1)[1].split()[0]: r for r in runs}
    assert sorted(dbs) == ["isolation_regression", "isolation_regression_gw1"]
    assert "specs/zz_dbname.spec" in dbs["isolation_regression"]
    specs = sorted(w for r in runs for w in r.split() if w.endswith(".spec"))
    names = ("wait", "counter_a", "counter_b", "counter_c", "fresh", "zz_dbname")
    assert specs == sorted(f"specs/{n}.spec" for n in names)

    # Results end where a serial run puts them; the workers' own
    # directories are gone.
    for name in names:
        assert (pytester.path / "results" / f"{name}.out").is_file()
    assert not list((pytester.path / "results").glob(".xdist/*"))
    # (the same diffs; their header lines carry the files' times, as
    # diff -U3's do, and the runs wrote them at different times)
    def untimed(diffs: str) -> str:
        return re.sub(r"^((?:---|\+\+\+) [^\t\n]*)\t[^\n]*$", r"\1", diffs.replace("./results/", "results/"), flags=re.M)

    assert untimed((pytester.path / "regression.diffs").read_text()) == untimed(serial_diffs)
    # One regression.out in pg_regress's status lines, a line per spec
    # (not two TAP streams), as serially.
    for out_lines in [(pytester.path / "regression.out").read_text().splitlines()]:
        assert len(out_lines) == len(names), out_lines
        assert all(re.match(r"^test \S+ +\.\.\. (ok|FAILED) +\d+ ms$", ln) for ln in out_lines), out_lines
        assert sorted(ln.split()[1] for ln in out_lines) == sorted(names)
        assert sum("FAILED" in ln for ln in out_lines) == 2, out_lines
    # isospec accept works from the merged manifest.
    out = pytester.run(str(isospec.binary()), "accept", "fresh")
    assert out.ret == 0, out.stderr.str()
    assert project.expected("fresh").read_text() == WAIT_OUT

    # The databases the workers made are gone with the session.
    assert _test_databases(server) == []
    kept = run(pytester, "specs/", "--isospec-dsn", server, "-n", "2", "--isospec-keep-databases")
    kept.assert_outcomes(passed=5, failed=1)
    assert _test_databases(server) == ["isolation_regression", "isolation_regression_gw1"]
    run(pytester, "specs/", "--isospec-dsn", server, "-n", "2")
    assert _test_databases(server) == []


def _test_databases(server: str) -> typing.List[str]:
    """The server's isolation_regression* databases (psql, PostgreSQL's client)."""
    psql = shutil.which("psql")
    assert psql, "psql (PostgreSQL's client) is needed to look at the server's databases"
    out = subprocess.run(
        [psql, "-XAtq", "-d", f"{server} dbname=postgres", "-c",
         "SELECT datname FROM pg_database WHERE datname LIKE 'isolation\\_regression%' ORDER BY 1"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.split()


def test_same_pass_fail_as_isospec_run(pytester: pytest.Pytester, project: Project, server: str) -> None:
    project.standard()
    project.break_expected("wait")
    project.spec("fresh", counter_spec("cf"))
    project.spec("broken", "session s1\nstep a { SELECT 1; \n")  # does not parse
    cli = isospec.run(["specs/"], dsn=server, cwd=pytester.path, outputdir="cli-out")
    by_cli = {s.name: s.passed for s in cli.specs}
    result = run(pytester, "specs/", "--isospec-dsn", server, "--junitxml=r.xml")
    by_pytest = {k: v == "passed" for k, v in junit_outcomes(pytester.path / "r.xml").items()}
    assert by_pytest == by_cli
    assert by_cli == {"wait": False, "counter_a": True, "counter_b": True, "fresh": False, "broken": False}
    result.stdout.fnmatch_lines(["broken: the spec could not be loaded:", "specs/broken.spec:2:*"])


def test_selection_options_narrow_the_one_run(
    pytester: pytest.Pytester, project: Project, server: str, logged_isospec: Path
) -> None:
    project.standard()
    project.break_expected("counter_a")
    project.break_expected("counter_b")

    run(pytester, "specs/", "--isospec-dsn", server, "-k", "wait").assert_outcomes(passed=1)
    assert run_commands(logged_isospec)[-1].split()[-1] == "specs/wait.spec"

    run(pytester, "specs/", "--isospec-dsn", server, "--deselect", "specs/wait.spec::wait").assert_outcomes(
        failed=2
    )
    assert "specs/wait.spec" not in run_commands(logged_isospec)[-1]

    run(pytester, "specs/", "--isospec-dsn", server, "-m", "not isospec").assert_outcomes(deselected=3)

    # -x: the session stops at the first failure.
    x = run(pytester, "specs/", "--isospec-dsn", server, "-x")
    x.assert_outcomes(failed=1)
    x.stdout.fnmatch_lines(["*stopping after 1 failures*"])

    # --lf: only what failed last time.
    run(pytester, "specs/", "--isospec-dsn", server).assert_outcomes(passed=1, failed=2)
    lf = run(pytester, "specs/", "--isospec-dsn", server, "--lf")
    lf.assert_outcomes(failed=2)
    last = run_commands(logged_isospec)[-1]
    assert "counter_a.spec" in last and "counter_b.spec" in last and "wait.spec" not in last


def test_missing_server_is_an_error_or_a_skip_never_a_pass(
    pytester: pytest.Pytester, project: Project
) -> None:
    project.standard()
    nowhere = f"host={pytester.path} port=1"
    err = run(pytester, "specs/", "--isospec-dsn", nowhere)
    err.assert_outcomes(failed=3)
    err.stdout.fnmatch_lines(["isospec: no server: *", "(--isospec-missing-server=skip skips the specs instead)"])
    skip = run(pytester, "specs/", "--isospec-dsn", nowhere, "--isospec-missing-server=skip", "-rs")
    skip.assert_outcomes(skipped=3)
    skip.stdout.fnmatch_lines(["SKIPPED [[]3[]] *isospec: no server: *"])


def test_temporary_instance_and_the_server_fixture(
    pytester: pytest.Pytester, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server named: the plugin starts a throwaway instance, with the
    project's temp-config, and other tests get its conninfo."""
    no_server_env(monkeypatch)
    project.standard()
    (pytester.path / "isolation.conf").write_text("max_prepared_transactions = 7\n")
    pytester.makeini(
        """
        [pytest]
        isospec_specs = specs
        isospec_temp_config = isolation.conf
        testpaths = tests
        """
    )
    project.spec(
        "settings",
        "session s\nstep show { SHOW max_prepared_transactions; }\n",
        "Parsed test spec with 1 sessions\n\nstarting permutation: show\nstep show: SHOW max_prepared_transactions;\n"
        "max_prepared_transactions\n-------------------------\n                        7\n(1 row)\n\n",
    )
    tests = pytester.mkdir("tests")
    (tests / "test_uses_server.py").write_text(
        "import isospec\n"
        "def test_server(isospec_server):\n"
        "    assert 'host=' in isospec_server and 'port=' in isospec_server\n"
        "    r = isospec.run(['specs/counter_a.spec'], dsn=isospec_server, dbname='other_db', outputdir='elsewhere')\n"
        "    assert [(s.name, s.status) for s in r.specs] == [('counter_a', 'ok')]\n"
    )
    # An RPM-style .spec outside isospec_specs is not collected by plain `pytest`.
    pytester.mkdir("packaging")
    (pytester.path / "packaging" / "thing.spec").write_text("Name: thing\n")
    result = run(pytester)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*isospec: the specs ran on a temporary instance (logs in *)*"])


def test_a_users_fixture_or_hook_provides_the_server(
    pytester: pytest.Pytester, project: Project, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_server_env(monkeypatch)
    project.standard()
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def my_database():
            return {server!r}

        @pytest.fixture(scope="session")
        def isospec_dsn(my_database):
            open("fixture-used", "w").close()
            return my_database
        """
    )
    result = run(pytester, "specs/")
    result.assert_outcomes(passed=3)
    assert (pytester.path / "fixture-used").exists()
    assert "temporary instance" not in result.stdout.str()

    pytester.makeconftest(
        f"""
        def pytest_isospec_dsn(config):
            return "host={pytester.path} port=2"
        """
    )
    hooked = run(pytester, "specs/")
    hooked.assert_outcomes(failed=3)
    hooked.stdout.fnmatch_lines(["isospec: no server: *.s.PGSQL.2*"])


def test_durations_are_the_specs_own(pytester: pytest.Pytester, project: Project, server: str) -> None:
    project.standard()
    result = run(pytester, "specs/", "--isospec-dsn", server, "--durations=0", "-vv")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*s call     specs/wait.spec::wait"])


def test_xdist_workers_on_temporary_instances(
    pytester: pytest.Pytester, project: Project, monkeypatch: pytest.MonkeyPatch, logged_isospec: Path
) -> None:
    """-n 2 with no server named: each worker starts its own instance."""
    if not have_xdist():
        pytest.skip("pytest-xdist is not installed")
    no_server_env(monkeypatch)
    project.standard()
    project.break_expected("wait")
    project.spec("zz_dbname", DBNAME_SPEC, DBNAME_OUT)
    result = run(pytester, "specs/", "-n", "2")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*+(1 row)*"])
    log = logged_isospec.read_text().splitlines()
    assert len([ln for ln in log if ln.startswith("temp-instance ")]) == 2, log
    runs = run_commands(logged_isospec)
    assert len(runs) == 2
    # Each worker on its own instance keeps the database's name.
    assert all("--dbname isolation_regression " in r for r in runs), runs


def test_github_actions_annotations_at_the_spec_line(
    pytester: pytest.Pytester, project: Project, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project.standard()
    project.break_expected("wait")
    project.spec("fresh", counter_spec("cf"))
    result = run(pytester, "specs/", "--isospec-dsn", server)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "::error file=specs/wait.spec,line=13,title=wait%3A output differs in permutation 1 of 1 *"
            "step s2upd::expected: (2 rows)%0Aactual:   (1 row)",
        ]
    )
    result.stdout.fnmatch_lines(["::error file=specs/fresh.spec,line=1,title=fresh%3A no expected output::*"])


def test_a_violated_invariant_fails_the_spec_with_the_invariant_named(
    pytester: pytest.Pytester, project: Project, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # The transcript matches its expected file; the invariant (line 2) does not hold.
    invariant = "SELECT n = 0 FROM ci"
    project.spec("inv", f"# The counter stays at zero.\n# isospec: invariant {invariant}\n" + counter_spec("ci"), counter_out("ci"))
    project.spec("kept", "# isospec: invariant SELECT n = 1 FROM ck\n" + counter_spec("ck"), counter_out("ck"))
    result = run(pytester, "specs/", "--isospec-dsn", server)
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert f"invariant {invariant}" in text, text
    assert "permutation 1 of 1 (inc read)" in text, text
    result.stdout.fnmatch_lines(["::error file=specs/inv.spec,line=2,title=inv%3A invariant*"])


def test_a_violated_invariant_is_named_also_when_the_transcript_differs(
    pytester: pytest.Pytester, project: Project, server: str
) -> None:
    invariant = "SELECT n = 0 FROM cd"
    changed = counter_out("cd").replace("(1 row)", "(2 rows)")
    project.spec("both", f"# isospec: invariant {invariant}\n" + counter_spec("cd"), changed)
    result = run(pytester, "specs/", "--isospec-dsn", server)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    # The long report and pytest's one-line summary both name it.
    assert f"invariant {invariant} returned false after permutation 1" in text, text
    summary = [ln for ln in text.splitlines() if ln.startswith("FAILED ")]
    assert summary and f"invariant violated: {invariant}" in summary[0], text


def test_the_projects_isospec_settings_name_the_spec_directories(
    pytester: pytest.Pytester, project: Project, server: str
) -> None:
    """[tool.isospec] specs = [...] in pyproject.toml: plain `pytest` collects
    those directories' specs, as `isospec run` runs them."""
    (pytester.path / "pyproject.toml").write_text('[tool.isospec]\nspecs = ["checks"]\n')
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "c.spec").write_text(counter_spec("cs"))
    (pytester.path / "expected").mkdir(exist_ok=True)
    (pytester.path / "expected" / "c.out").write_text(counter_out("cs"))
    result = run(pytester, "--isospec-dsn", server, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["checks/c.spec::c PASSED*"])


def test_the_projects_conninfo_setting_names_the_server(
    pytester: pytest.Pytester, project: Project, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """conninfo in [tool.isospec]: plain `pytest` runs the specs on that
    server, as `isospec run` does, instead of starting a throwaway one."""
    no_server_env(monkeypatch)
    project.standard()
    (pytester.path / "pyproject.toml").write_text(f"[tool.isospec]\nconninfo = {server!r}\n")
    result = run(pytester, "specs/")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "temporary instance" not in out, out
    result.stdout.fnmatch_lines(["isospec: server: conninfo in *pyproject.toml"])
