"""One ``isospec run`` over some specs, and what it leaves behind.

The run's command line, the subprocess, its TAP lines read as they come
(each item finishes as soon as its spec has), its JSON report read once it
has ended, and the merging of a run that wrote elsewhere (an xdist
worker's, a later run's) into the output directory, so that everything
ends up where one ``isospec run`` would have put it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

import pytest

from ._api import run_args
from ._options import accept, dbname, extra_args, keep_databases, worker_id
from ._results import SpecResult, check_format, read_run_report, spec_results
from ._server import binary_or_fail

if TYPE_CHECKING:
    from ._collect import SpecItem

TAP = re.compile(r"^(ok|not ok) (\d+) - (.*?)(?:  (\d+) ms| # SKIP (.*))?$")
# Under results/: the outputs of the runs that do not write to the output
# directory itself, until they are merged.
XDIST_DIR = ".xdist"


@dataclass
class Tap:
    ok: bool
    skip: Optional[str]
    ms: Optional[int]


@dataclass(frozen=True)
class BatchPlace:
    """What a run needs of the plugin's state: pytest's configuration,
    the output directory, a directory for its JSON report, and whether
    this process has a temporary instance of its own."""

    config: pytest.Config
    outputdir: Path
    tmpdir: str
    own_instance: bool


class Batch:
    """One ``isospec run`` over some specs, read as it goes: TAP lines on
    stdout say when each spec finished; the JSON report, once the process
    has ended, gives each spec's status, diff, place of departure and
    annotation."""

    def __init__(self, place: BatchPlace, items: List["SpecItem"], dsn: Optional[str], number: int):
        self.final = place.outputdir
        self.items = items
        self.names = [i.spec_name for i in items]
        self.number = number
        config = place.config
        # The run's directory: the spec paths, and the files its JSON
        # report (annotations included) names, are relative to it.
        self.cwd = config.invocation_params.dir
        final = place.outputdir
        wid = worker_id(config)
        if wid is None and number == 1:
            self.outputdir = final  # exactly where `isospec run` would write
        else:
            tag = f"{wid or 'main'}-{number}"
            self.outputdir = final / "results" / XDIST_DIR / tag
        self.json_path = Path(place.tmpdir) / f"run-{number}.json"
        db = dbname(config)
        if wid and wid != "gw0" and not place.own_instance:
            # Workers share the server: each its own database.  gw0 keeps
            # the name, and the specs that name it are scheduled there.
            # (On a temporary instance of its own each keeps the name.)
            db = f"{db}_{wid}"
        extra = extra_args(config)
        specs = [os.path.relpath(i.path, self.cwd) for i in items]
        self.command = [
            str(binary_or_fail()),
            "run",
            "--tap",
            "--color",
            "never",
            # The plugin prints the annotations under GitHub Actions, once
            # for the whole session (pytest_terminal_summary), as the JSON
            # report has them.
            "--annotations",
            "none",
            "--json",
            str(self.json_path),
            # The databases the plugin makes go when its run ends, unless
            # asked to keep them (a database in use is the user's).
            *([] if keep_databases(config) or "--use-existing" in extra else ["--drop-database"]),
            *run_args(
                dsn=dsn,
                outputdir=None if self.outputdir == self.cwd else os.path.relpath(self.outputdir, self.cwd),
                dbname=db,
                accept=accept(config),
                extra_args=extra,
            ),
            *specs,
        ]
        self.cond = threading.Condition()
        self.tap: Dict[str, Tap] = {}
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self.returncode: Optional[int] = None
        self.results: Optional[Dict[str, SpecResult]] = None
        self.finished = False
        # This process's environment: GITHUB_WORKSPACE, when set, is what
        # the annotations' file names are relative to (else self.cwd).
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
            m = TAP.match(line)
            with self.cond:
                self.stdout.append(line)
                if m:
                    self.tap[m.group(3)] = Tap(
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

    def wait_for(self, name: str) -> Optional[Tap]:
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
            if report is not None:
                check_format(report, "isospec-run", self.json_path)
            results = spec_results(report, cwd=self.cwd) if report else []
            self.results = {r.name: r for r in results}
            if self.outputdir != self.final:
                self.results = merge(self, self.results, self.final)
        return self.results

    def kill(self) -> None:
        self.stop()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def merge(batch: Batch, results: Dict[str, SpecResult], final: Path) -> Dict[str, SpecResult]:
    """Copies a worker's (or a later run's) results/NAME.out files into
    the output directory ``final``'s results/, and appends its
    regression.diffs, regression.out and accept manifest to the output
    directory's, so that after ``pytest -n N`` everything is where
    ``isospec run`` would have put it (and ``isospec accept`` works).
    The results, with the paths into the output directory."""
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
        out[name] = dataclasses.replace(
            r, result_file=rf, diff=rewrite(r.diff) if r.diff else r.diff, where=where
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


def clear_outputs(outputdir: Path) -> None:
    """No regression.diffs/regression.out, accept manifest or unmerged
    worker outputs of an earlier session, as ``isospec run`` starts."""
    for f in ("regression.diffs", "regression.out", "results/.isospec-manifest"):
        try:
            (outputdir / f).unlink()
        except OSError:
            pass
    shutil.rmtree(outputdir / "results" / XDIST_DIR, ignore_errors=True)


def pg_regress_out(outputdir: Path) -> None:
    """Rewrites ``regression.out``, which the runs (each with ``--tap``, and
    under xdist one per worker) filled with TAP streams, as one file of
    pg_regress's status lines, as ``isospec run`` writes it: one
    ``test NAME ... STATUS  MS ms`` line per spec, in the order they ended."""
    path = outputdir / "regression.out"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    lines = []
    for line in text.splitlines():
        m = TAP.match(line)
        if m is None:
            continue  # the plan (1..N) and TAP's comments
        ok, _, name, ms, skip = m.groups()
        if skip is not None:
            lines.append(f"test {name:<28} ... not run ({skip.removeprefix('not run (').rstrip(')')})")
            continue
        status = "ok" if ok == "ok" else "FAILED"
        lines.append(f"test {name:<28} ... {status:<10} {ms or 0:>8} ms")
    if not lines:
        return  # not TAP: another run's file, left as it is
    path.write_text("".join(f"{ln}\n" for ln in lines))

