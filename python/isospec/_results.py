"""Typed results of ``isospec run``, read from its ``--json`` report.

Each spec's status, timings, diff, where its transcript departs and its
GitHub annotation are the report's, as the binary wrote them: nothing here
works them out again.  A report is read only when its ``format`` and
``format_version`` are the ones this package knows (``check_format``); a
binary of another version is named in the error.  The results of
``isospec explore`` are in ``_explore``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple

__all__ = [
    "Status",
    "StepTiming",
    "Violation",
    "Where",
    "Annotation",
    "SpecResult",
    "RunResult",
]

#: A spec's status in a run, as isospec's JSON report spells it.
Status = Literal[
    "ok", "failed", "new", "accepted", "invariant-violated", "spec-error", "run-error", "not-run"
]

_PASSED = ("ok", "accepted")


@dataclass(frozen=True)
class StepTiming:
    """One step's time from launch to completion."""

    step: str
    micros: int


@dataclass(frozen=True)
class Violation:
    """An invariant that did not return true after a permutation:
    its SQL, what it returned, the permutation (1-based) and its steps,
    and the line of its ``# isospec: invariant`` (``None``: given with
    ``--invariant``)."""

    invariant: str
    got: str
    permutation: int
    permutation_steps: Tuple[str, ...] = ()
    line: Optional[int] = None
    #: ``invariant``, or ``anomaly`` (``# isospec: anomalies``: no serial
    #: order of the committed transactions explains the permutation, and
    #: ``got`` says how it differs).
    kind: str = "invariant"

    def describe(self) -> str:
        """``invariant SQL returned false after permutation 2 (s1 s2)``."""
        steps = f" ({' '.join(self.permutation_steps)})" if self.permutation_steps else ""
        if self.kind == "anomaly":
            return f"permutation {self.permutation}{steps} is {self.got}"
        return f"invariant {self.invariant} returned {self.got} after permutation {self.permutation}{steps}"


@dataclass(frozen=True)
class Where:
    """Where a spec's transcript first departs from its expected output.

    ``kind`` is ``differs``, ``spec-error``, ``run-error`` or ``invariant``;
    ``permutation`` is 1-based (``None`` when the difference comes before
    the first permutation) and ``permutation_steps`` its step list;
    ``step`` (and its ``session``) the step whose output departs, when
    known; ``expected``/``actual`` the first differing lines (``None`` when
    a line is missing on that side); ``title``/``message`` a summary.
    ``file``/``line``/``column`` point at the departure in the spec (its
    permutation line, or the step's definition).
    """

    kind: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None
    permutation: Optional[int] = None
    permutations: Optional[int] = None
    permutation_steps: Tuple[str, ...] = ()
    step: Optional[str] = None
    session: Optional[str] = None
    expected: Optional[str] = None
    actual: Optional[str] = None
    title: Optional[str] = None
    message: Optional[str] = None

    def describe(self) -> str:
        """The permutation and step where the transcript departs, e.g.
        ``permutation 2 of 3 (s1a s2a s1c), step s2a``."""
        parts = []
        if self.permutation is not None:
            of = f" of {self.permutations}" if self.permutations else ""
            steps = f" ({' '.join(self.permutation_steps)})" if self.permutation_steps else ""
            parts.append(f"permutation {self.permutation}{of}{steps}")
        elif self.permutations is not None:
            parts.append("before the first permutation")
        if self.step:
            parts.append(f"step {self.step}")
        return ", ".join(parts) or (self.title or "")

    def location(self) -> Optional[str]:
        """``file:line[:column]`` of the departure, when known."""
        if not self.file:
            return None
        if self.line is None:
            return self.file
        col = f":{self.column}" if self.column and self.column > 1 else ""
        return f"{self.file}:{self.line}{col}"


@dataclass(frozen=True)
class Annotation:
    """A failing spec's GitHub Actions annotation, as ``isospec run`` makes
    it: ``command`` is the whole ``::error file=...,line=...,title=...::message``
    workflow command (what the pytest plugin prints); ``file`` is relative
    to ``GITHUB_WORKSPACE`` in isospec's environment (else its working
    directory) when under it; ``col`` is set only for a spec that does not
    parse."""

    file: Optional[str]
    line: int
    col: Optional[int]
    title: str
    message: str
    command: str


@dataclass(frozen=True)
class SpecResult:
    """One spec's outcome in a run.

    ``status`` is one of ``ok``, ``failed``, ``new``, ``accepted``,
    ``invariant-violated``, ``spec-error``, ``run-error``, ``not-run``;
    ``violations`` every invariant that did not hold (also when the
    transcript differs as well); ``duration`` is in seconds;
    ``diff`` the unified diff against the closest expected file (failed
    specs); ``where`` where the transcript departs; ``result_file`` the
    transcript written (``results/NAME.out``); ``detail`` the error text
    of spec and run errors (and the destination of an accepted one);
    ``annotation`` its GitHub annotation (a spec that ran and did not pass).
    """

    name: str
    status: Status
    duration: float
    spec: Optional[Path] = None
    result_file: Optional[Path] = None
    diff: Optional[str] = None
    where: Optional[Where] = None
    detail: Optional[str] = None
    permutations: int = 0
    steps: Tuple[StepTiming, ...] = ()
    annotation: Optional[Annotation] = None
    violations: Tuple[Violation, ...] = ()

    @property
    def passed(self) -> bool:
        """True for ``ok`` and ``accepted``."""
        return self.status in _PASSED

    def transcript(self) -> Optional[str]:
        """The transcript of this run (``result_file``'s text), if it exists."""
        if self.result_file is not None and self.result_file.is_file():
            return self.result_file.read_text(encoding="utf-8", errors="replace")
        return None


@dataclass(frozen=True)
class RunResult:
    """What ``isospec run`` did: its exit code, output, and every spec's result."""

    returncode: int
    specs: Tuple[SpecResult, ...]
    command: Tuple[str, ...] = ()
    stdout: str = ""
    stderr: str = ""
    outputdir: Optional[Path] = None

    @property
    def passed(self) -> bool:
        """True when the run passed: exit code 0 and every spec ok or accepted."""
        return self.returncode == 0 and all(s.passed for s in self.specs)

    @property
    def failed(self) -> Tuple[SpecResult, ...]:
        """The specs that did not pass."""
        return tuple(s for s in self.specs if not s.passed)

    def __getitem__(self, name: str) -> SpecResult:
        """The result of the spec named ``name``."""
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(name)

    def __iter__(self) -> Iterator[SpecResult]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


# ---------------------------------------------------------------------------
# Reading the run report


def _where_from_json(w: Any) -> Optional[Where]:
    if not isinstance(w, dict):
        return None

    def opt_int(v: Any) -> Optional[int]:
        if isinstance(v, str) and v.isdigit():
            return int(v)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def opt_str(v: Any) -> Optional[str]:
        return v if isinstance(v, str) else None

    steps = w.get("permutation_steps") or ()
    return Where(
        kind=opt_str(w.get("kind")),
        file=opt_str(w.get("file")),
        line=opt_int(w.get("line")),
        column=opt_int(w.get("column")),
        permutation=opt_int(w.get("permutation")),
        permutations=opt_int(w.get("permutations")),
        permutation_steps=tuple(str(s) for s in steps),
        step=opt_str(w.get("step")),
        session=opt_str(w.get("session")),
        expected=opt_str(w.get("expected")),
        actual=opt_str(w.get("actual")),
        title=opt_str(w.get("title")),
        message=opt_str(w.get("message")),
    )


def _annotation_from_json(a: Any) -> Optional[Annotation]:
    if not isinstance(a, dict) or not isinstance(a.get("command"), str):
        return None
    file, line, col = a.get("file"), a.get("line"), a.get("col")
    return Annotation(
        file=file if isinstance(file, str) else None,
        line=line if isinstance(line, int) and not isinstance(line, bool) else 1,
        col=col if isinstance(col, int) and not isinstance(col, bool) else None,
        title=str(a.get("title") or ""),
        message=str(a.get("message") or ""),
        command=a["command"],
    )


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def spec_results(report: Dict[str, Any], cwd: Optional[Path] = None) -> List[SpecResult]:
    """The specs of a run's JSON report.  Relative paths in the report are
    relative to ``cwd`` (the run's working directory)."""
    base = cwd or Path.cwd()

    def resolve(p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else base / path

    results: List[SpecResult] = []
    for s in report.get("specs", []):
        name = str(s.get("name", ""))
        status = str(s.get("status", "run-error"))
        rf = s.get("result_file")
        result_file = resolve(rf) if isinstance(rf, str) else None
        diff = s.get("diff") if isinstance(s.get("diff"), str) else None
        where = _where_from_json(s.get("where"))
        spec = s.get("spec")
        results.append(
            SpecResult(
                name=name,
                status=status,  # type: ignore[arg-type]
                duration=_int(s.get("duration_ms")) / 1000.0,
                spec=resolve(spec) if isinstance(spec, str) else None,
                result_file=result_file,
                diff=diff,
                where=where,
                detail=s.get("detail") if isinstance(s.get("detail"), str) else None,
                permutations=_int(s.get("permutations")),
                steps=tuple(
                    StepTiming(str(t.get("step", "")), _int(t.get("micros")))
                    for t in s.get("steps", [])
                    if isinstance(t, dict)
                ),
                annotation=_annotation_from_json(s.get("annotation")),
                violations=tuple(
                    Violation(
                        invariant=str(v.get("invariant", "")),
                        got=str(v.get("got", "")),
                        permutation=_int(v.get("permutation")),
                        permutation_steps=tuple(str(x) for x in v.get("permutation_steps") or ()),
                        line=v.get("line") if isinstance(v.get("line"), int) else None,
                        kind=str(v.get("kind") or "invariant"),
                    )
                    for v in s.get("violations", []) or []
                    if isinstance(v, dict)
                ),
            )
        )
    return results


#: The JSON report formats this package reads, and their versions.
FORMATS = {"isospec-run": 1, "isospec-explore": 1}


class ReportFormatError(ValueError):
    """A report of another format, or another version of it, than this
    package reads: the binary and the package are of different versions."""


def check_format(report: Dict[str, Any], expected: str, path: Path) -> None:
    """Raises ``ReportFormatError`` unless ``report`` is an ``expected``
    document of the version this package reads."""
    got, version = report.get("format"), report.get("format_version")
    want = FORMATS[expected]
    if got != expected or version != want:
        raise ReportFormatError(
            f"{path}: the isospec binary wrote a {got!r} report of format_version {version!r}; "
            f"this isospec package reads {expected!r} format_version {want}: the binary "
            "(ISOSPEC_BIN, or the isospec found on PATH) and the package are different "
            "versions; install the same version of both"
        )


def read_run_report(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON report at ``path``, or ``None`` when the run wrote none."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
