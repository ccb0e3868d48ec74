"""The server's lifetime: which server the specs run against, and the
temporary instance when the plugin starts one.

The server is, in order, the one ``--isospec-dsn`` names, the
``isospec_dsn`` fixture's, the one libpq's environment names, else a
temporary instance that ``isospec temp-instance`` starts for this process
and stops at the end of the session.  Without a server the specs fail or
skip (``--isospec-missing-server``).  The report header says which.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Tuple

import pytest

from ._api import _names_binaries
from ._binary import IsospecNotFound, binary
from ._options import bindir_choice, extra_args, missing_server, settings_conninfo, worker_id
from ._postgres import SERVER_ENV

# How a run that could not reach its server says so.
NO_SERVER = re.compile(
    r"connection to server|could not connect|connecting to database|server closed the connection"
)


class MissingServer(Exception):
    pass


def binary_or_fail() -> Path:
    try:
        return binary()
    except IsospecNotFound as e:
        pytest.fail(f"isospec: {e}", pytrace=False)


_reported_missing: Dict[int, str] = {}


def missing(config: pytest.Config, why: str) -> NoReturn:
    """Skips or fails (``--isospec-missing-server``) for want of a server:
    the whole reason once, then its first line."""
    why = why.strip()
    if why.startswith("isospec: error: "):
        why = why[len("isospec: error: ") :]
    if missing_server(config) == "skip":
        pytest.skip(f"isospec: no server: {why}")
    if id(config) in _reported_missing:
        pytest.fail(f"isospec: no server: {why.splitlines()[0]} (as above)", pytrace=False)
    _reported_missing[id(config)] = why
    pytest.fail(
        f"isospec: no server: {why}\n(--isospec-missing-server=skip skips the specs instead)",
        pytrace=False,
    )


class Server:
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
        elif any(os.environ.get(v) for v in SERVER_ENV):
            named = ", ".join(v for v in SERVER_ENV if os.environ.get(v))
            self.resolved = (None, f"libpq's environment ({named})")
        elif (from_file := settings_conninfo(self.config)) is not None:
            # The project's settings name a server, as for `isospec run`.
            self.resolved = (from_file[0], f"conninfo in {from_file[1]}")
        else:
            self.resolved = (self._start(tmp), "a temporary instance")
        return self.resolved

    def conninfo(self, fixture_dsn: Optional[str], tmp: pytest.TempPathFactory) -> str:
        if self.error is not None:
            missing(self.config, self.error)
        try:
            dsn, _ = self.resolve(fixture_dsn, tmp)
        except MissingServer as e:
            self.error = str(e)
            missing(self.config, self.error)
        if dsn is not None:
            return dsn
        return os.environ.get("ISOSPEC_CONNINFO", "")

    def _start(self, tmp: pytest.TempPathFactory) -> str:
        configured = self.config.getini("isospec_temp_instance")
        wid = worker_id(self.config)
        if configured:
            d = Path(configured[0])
            if wid:
                d = d / wid
        else:
            d = tmp.getbasetemp() / "isospec-instance"
        d.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary_or_fail()), "temp-instance", str(d)]
        bindir, _ = bindir_choice(self.config)
        if bindir is not None and not _names_binaries(extra_args(self.config)):
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
            raise MissingServer(
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


def header(config: pytest.Config) -> List[str]:
    """The report header's lines: the binary, and where the server comes from."""
    from . import __version__

    try:
        where = str(binary())
    except IsospecNotFound as e:
        where = f"not found ({e})"
    lines = [f"isospec: {__version__}, {where}"]
    dsn = config.getoption("isospec_dsn") or config.getini("isospec_dsn")
    if dsn or os.environ.get("ISOSPEC_CONNINFO") or any(os.environ.get(v) for v in SERVER_ENV):
        lines.append("isospec: server: the one named by --isospec-dsn, isospec_dsn or libpq's environment")
    elif (from_file := settings_conninfo(config)) is not None:
        lines.append(f"isospec: server: conninfo in {from_file[1]}")
    else:
        bindir, why = bindir_choice(config)
        lines.append(f"isospec: server binaries, if the plugin starts a throwaway server: {why}")
    return lines
