"""Typed results of ``isospec run`` and ``isospec explore``, read from their
``--json`` reports.

The run report's per-spec fields ``spec``, ``result_file``, ``diff`` and
``where`` are used when the binary writes them; with a binary that does
not, they are filled in from the files a run leaves: the spec's chunk of
``regression.diffs``, ``results/NAME.out``, and the first line where the
transcript departs from the expected file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple

__all__ = [
    "Status",
    "StepTiming",
    "Where",
    "SpecResult",
    "RunResult",
    "Failure",
    "ExploreClass",
    "ExploreSpec",
    "ExploreResult",
]

#: A spec's status in a run, as isospec's JSON report spells it.
Status = Literal["ok", "failed", "new", "accepted", "spec-error", "run-error", "not-run"]

_PASSED = ("ok", "accepted")


@dataclass(frozen=True)
class StepTiming:
    """One step's time from launch to completion."""

    step: str
    micros: int


@dataclass(frozen=True)
class Where:
    """Where a spec's transcript first departs from its expected output.

    ``kind`` is ``differs``, ``spec-error`` or ``run-error``;
    ``permutation`` is 1-based (``None`` when the difference comes before
    the first permutation) and ``permutation_steps`` its step list;
    ``step`` (and its ``session``) the step whose output departs, when
    known; ``expected``/``actual`` the first differing lines (``None`` when
    a line is missing on that side); ``title``/``message`` a summary.
    ``file``/``line``/``column`` point at the departure: the binary points
    into the spec (its permutation line, or the step's definition); when
    the binary reports no place and it is worked out from the diff, they
    point at the line of the result file.
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
class SpecResult:
    """One spec's outcome in a run.

    ``status`` is one of ``ok``, ``failed``, ``new``, ``accepted``,
    ``spec-error``, ``run-error``, ``not-run``; ``duration`` is in seconds;
    ``diff`` the unified diff against the closest expected file (failed
    specs); ``where`` where the transcript departs; ``result_file`` the
    transcript written (``results/NAME.out``); ``detail`` the error text
    of spec and run errors (and the destination of an accepted one).
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


@dataclass(frozen=True)
class Failure:
    """A step that failed in an explored interleaving."""

    step: str
    sqlstate: Optional[str]
    message: Optional[str]


@dataclass(frozen=True)
class ExploreClass:
    """Interleavings with one outcome: how many, a representative
    ``permutation`` line (and ``shrunk``, its shortest form, with
    ``--shrink``), and the outcome (failed steps, steps that waited,
    outcome query rows, violated invariants).  ``runs`` counts the
    interleavings actually run (fewer than ``count`` with ``--reduce``),
    ``preemptions`` those of the representative."""

    count: int
    first: int
    permutation: str
    description: str
    failures: Tuple[Failure, ...] = ()
    waited: Tuple[str, ...] = ()
    results: Tuple[Any, ...] = ()
    violated: Tuple[str, ...] = ()
    runs: Optional[int] = None
    preemptions: Optional[int] = None
    shrunk: Optional[str] = None


@dataclass(frozen=True)
class ExploreSpec:
    """One spec's exploration: the size of its space, what ran, and its
    classes.  ``search`` says how the interleavings were chosen (``space``,
    a sample, preemption bounds) and ``complete`` whether every one the
    search covers ran."""

    spec: str
    space: str
    exhaustive: bool
    sampled: bool
    cut_short: bool
    seed: int
    explored: int
    unrealizable: int
    seconds: float
    classes: Tuple[ExploreClass, ...]
    errors: Tuple[Tuple[int, str], ...] = ()
    search: Optional[str] = None
    complete: Optional[bool] = None
    invariants: Tuple[str, ...] = ()

    @property
    def violations(self) -> Tuple[ExploreClass, ...]:
        """The classes that violate an invariant."""
        return tuple(c for c in self.classes if c.violated)


@dataclass(frozen=True)
class ExploreResult:
    """What ``isospec explore`` found, spec by spec."""

    returncode: int
    specs: Tuple[ExploreSpec, ...]
    command: Tuple[str, ...] = ()
    stdout: str = ""
    stderr: str = ""

    def __getitem__(self, spec: str) -> ExploreSpec:
        """The exploration of ``spec`` (as given, or its file name)."""
        for s in self.specs:
            if s.spec == spec or Path(s.spec).name == spec or Path(s.spec).stem == spec:
                return s
        raise KeyError(spec)


# ---------------------------------------------------------------------------
# Reading the run report


_DIFF_HEADER = re.compile(r"^diff -U\d+ ")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_STEP = re.compile(r"^step (.+?):(?: |$)")
_PERMUTATION = "starting permutation:"


def diff_chunks(text: str) -> Dict[str, str]:
    """Splits ``regression.diffs`` into its chunks (one per differing spec),
    keyed by each chunk's ``diff -U3 EXPECTED RESULT`` header line."""
    chunks: Dict[str, str] = {}
    header: Optional[str] = None
    lines: List[str] = []
    for line in text.splitlines(keepends=True):
        if _DIFF_HEADER.match(line):
            if header is not None:
                chunks[header] = "".join(lines)
            header, lines = line.rstrip("\n"), [line]
        elif header is not None:
            lines.append(line)
    if header is not None:
        chunks[header] = "".join(lines)
    return chunks


def chunk_for(chunks: Dict[str, str], name: str) -> Optional[str]:
    """The chunk of the spec named ``name`` (the one comparing ``results/NAME.out``)."""
    for header, text in chunks.items():
        if header.endswith(f" results/{name}.out") or header.endswith(f"/results/{name}.out"):
            return text
    return None


def where_from(diff: str, transcript: Optional[str], result_file: Optional[str]) -> Optional[Where]:
    """Where a transcript departs, from its unified diff and the transcript
    itself: the first changed line, the permutation it belongs to (counting
    ``starting permutation:`` lines), and the last step reported before it."""
    line_no: Optional[int] = None
    expected: Optional[str] = None
    actual: Optional[str] = None
    new = 0
    in_hunk = False
    for raw in diff.splitlines():
        m = _HUNK.match(raw)
        if m:
            if line_no is not None:
                break
            # The result file's line the hunk starts at (after it, when empty).
            new = int(m.group(3)) + (1 if m.group(4) == "0" else 0)
            in_hunk = True
            continue
        if not in_hunk or not raw:
            continue
        tag, body = raw[0], raw[1:]
        if tag == " ":
            if line_no is not None:
                break  # the end of the first change
            new += 1
        elif tag == "-":
            line_no = new if line_no is None else line_no
            expected = body if expected is None else expected
        elif tag == "+":
            line_no = new if line_no is None else line_no
            actual = body if actual is None else actual
            new += 1
    if line_no is None:
        return None
    permutation: Optional[int] = None
    permutation_steps: Tuple[str, ...] = ()
    permutations: Optional[int] = None
    step: Optional[str] = None
    if transcript is not None:
        lines = transcript.splitlines()
        permutations = sum(1 for l in lines if l.startswith(_PERMUTATION))
        for l in lines[: max(line_no, 1)]:
            if l.startswith(_PERMUTATION):
                permutation = (permutation or 0) + 1
                permutation_steps = tuple(l[len(_PERMUTATION) :].split())
                step = None
            else:
                sm = _STEP.match(l)
                if sm:
                    step = sm.group(1)
    return Where(
        kind="differs",
        file=result_file,
        line=line_no,
        column=1,
        permutation=permutation,
        permutations=permutations,
        permutation_steps=permutation_steps,
        step=step,
        expected=expected,
        actual=actual,
        title="transcript differs",
        message=None,
    )


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


def _opt_int(v: Any) -> Optional[int]:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def spec_results(
    report: Dict[str, Any],
    outputdir: Path,
    cwd: Optional[Path] = None,
    diffs_text: Optional[str] = None,
) -> List[SpecResult]:
    """The specs of a run's JSON report, with the fields an older binary
    does not write filled in from ``outputdir``'s files.  Relative paths in
    the report are relative to ``cwd`` (the run's working directory)."""
    base = cwd or Path.cwd()

    def resolve(p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else base / path

    out_abs = outputdir if outputdir.is_absolute() else base / outputdir
    chunks: Optional[Dict[str, str]] = None
    results: List[SpecResult] = []
    for s in report.get("specs", []):
        name = str(s.get("name", ""))
        status = str(s.get("status", "run-error"))
        if "result_file" in s:
            rf = s.get("result_file")
            result_file = resolve(rf) if isinstance(rf, str) else None
        else:
            guess = out_abs / "results" / f"{name}.out"
            result_file = guess if guess.is_file() and status != "not-run" else None
        diff = s.get("diff") if isinstance(s.get("diff"), str) else None
        if diff is None and "diff" not in s and status == "failed":
            if chunks is None:
                if diffs_text is None:
                    try:
                        diffs_text = (out_abs / "regression.diffs").read_text(
                            encoding="utf-8", errors="replace"
                        )
                    except OSError:
                        diffs_text = ""
                chunks = diff_chunks(diffs_text)
            diff = chunk_for(chunks, name)
        where = _where_from_json(s.get("where"))
        if where is None and diff is not None:
            transcript = None
            if result_file is not None:
                try:
                    transcript = result_file.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    pass
            where = where_from(diff, transcript, str(result_file) if result_file else None)
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
            )
        )
    return results


def read_run_report(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON report at ``path``, or ``None`` when the run wrote none."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def explore_specs(report: Dict[str, Any]) -> List[ExploreSpec]:
    """The specs of an ``isospec explore --json`` report."""
    out: List[ExploreSpec] = []
    for s in report.get("specs", []):
        classes = tuple(
            ExploreClass(
                count=_int(c.get("count")),
                first=_int(c.get("first")),
                permutation=str(c.get("permutation", "")),
                description=str(c.get("description", "")),
                failures=tuple(
                    Failure(str(f.get("step", "")), f.get("sqlstate"), f.get("message"))
                    for f in c.get("failures", [])
                ),
                waited=tuple(str(w) for w in c.get("waited", [])),
                results=tuple(c.get("results", [])),
                violated=tuple(str(v) for v in c.get("violated", [])),
                runs=_opt_int(c.get("runs")),
                preemptions=_opt_int(c.get("preemptions")),
                shrunk=c.get("shrunk") if isinstance(c.get("shrunk"), str) else None,
            )
            for c in s.get("classes", [])
        )
        out.append(
            ExploreSpec(
                spec=str(s.get("spec", "")),
                space=str(s.get("space", "")),
                exhaustive=bool(s.get("exhaustive")),
                sampled=bool(s.get("sampled")),
                cut_short=bool(s.get("cut_short")),
                seed=_int(s.get("seed")),
                explored=_int(s.get("explored")),
                unrealizable=_int(s.get("unrealizable")),
                seconds=float(s.get("seconds") or 0.0),
                classes=classes,
                errors=tuple(
                    (_int(e.get("first")), str(e.get("message", ""))) for e in s.get("errors", [])
                ),
                search=str(s["search"]) if s.get("search") is not None else None,
                complete=bool(s["complete"]) if s.get("complete") is not None else None,
                invariants=tuple(str(i) for i in s.get("invariants", [])),
            )
        )
    return out
