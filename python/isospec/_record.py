"""``isospec.record``: run a program through isospec's recording proxy and
get the spec it wrote (each connection a session, each statement a step,
the observed order as the permutation)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

from ._api import IsospecError, _temp_bindir
from ._binary import binary as _binary
from ._flags import flags
from ._postgres import with_embedded_hint

__all__ = ["RecordResult", "record"]

PathLike = Union[str, "os.PathLike[str]"]

_WROTE = re.compile(r"^isospec record: wrote (.+) \((\d+) sessions?, (\d+) steps?\)$", re.M)
_WARNING = re.compile(r"^isospec record: warning: (.*)$", re.M)


@dataclass(frozen=True)
class RecordResult:
    """What ``record`` did.

    Attributes:
        returncode: the recorded command's exit status (as ``isospec
            record`` exits with it).
        spec: the spec file written.
        sessions, steps: how many of each the spec has.
        warnings: what could not become a step (COPY, a canceled
            statement, ...) and other faults, one line each.
        stdout, stderr: the output of the recording (the command's stdout
            and isospec's stderr).
        command: the isospec command line.
    """

    returncode: int
    spec: Path
    sessions: int
    steps: int
    warnings: Tuple[str, ...]
    stdout: str
    stderr: str
    command: Tuple[str, ...]

    @property
    def text(self) -> str:
        """The spec's text."""
        return self.spec.read_text()


def record(
    command: Sequence[str],
    output: PathLike,
    *,
    setup: Optional[PathLike] = None,
    teardown: Optional[PathLike] = None,
    dsn: Optional[str] = None,
    dbname: Optional[str] = None,
    steps: Optional[str] = None,
    keep_database: bool = False,
    temp_instance: Optional[PathLike] = None,
    temp_config: Optional[PathLike] = None,
    extra_args: Sequence[str] = (),
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    bindir: Optional[PathLike] = None,
) -> RecordResult:
    """Records ``command`` (a program and its arguments) into a spec with
    ``isospec record``.

    The program runs with ``PGHOST``, ``PGPORT``, ``PGUSER``,
    ``PGDATABASE`` and ``DATABASE_URL`` naming the recording proxy, so a
    test that connects with libpq's defaults or ``DATABASE_URL`` is
    recorded unchanged.

    Args:
        command: the program to record, e.g. ``["pytest", "-k", "pool"]``.
        output: the spec file to write.
        setup, teardown: SQL files run before and after the program, and
            written as the spec's setup and teardown blocks.
        dsn: a libpq connection string or URI; without it, libpq's ``PG*``
            variables, else a temporary instance.
        dbname: the database to prepare (default ``isolation_regression``).
        steps: ``"statement"`` (default) or ``"transaction"``: one step
            per statement or per transaction.
        keep_database: keep the database the recording made (by default
            it is dropped once the spec is written).
        temp_instance, temp_config, bindir: as for ``run``.
        extra_args: any other ``isospec record`` options, verbatim.
        cwd, env: the working directory and environment of the process.

    Returns:
        A ``RecordResult``; ``returncode`` is the program's exit status.

    Raises:
        IsospecError: when no spec was written (no server, a failing
            setup, nothing recorded).
    """
    base = Path(os.fspath(cwd)) if cwd is not None else Path.cwd()
    args = flags(
        output=output,
        setup=setup,
        teardown=teardown,
        dsn=dsn,
        dbname=dbname,
        steps=steps,
        keep_database=keep_database,
        temp_instance=temp_instance,
        temp_config=temp_config,
        bindir=_temp_bindir(dsn, bindir, env, extra_args),
    ) + list(extra_args)
    full = [str(_binary()), "record", *args, "--", *command]
    proc = subprocess.run(
        full,
        cwd=base,
        env=with_embedded_hint(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    wrote = _WROTE.search(proc.stderr)
    if wrote is None:
        raise IsospecError(
            f"isospec record exited with {proc.returncode} and wrote no spec: "
            + (proc.stderr.strip() or "no output"),
            proc.returncode,
            proc.stderr,
            full,
        )
    spec = Path(wrote.group(1))
    return RecordResult(
        returncode=proc.returncode,
        spec=spec if spec.is_absolute() else base / spec,
        sessions=int(wrote.group(2)),
        steps=int(wrote.group(3)),
        warnings=tuple(_WARNING.findall(proc.stderr)),
        stdout=proc.stdout,
        stderr=proc.stderr,
        command=tuple(full),
    )
