"""Typed results of ``isospec explore``, read from its ``--json`` report.

An exploration's result is its own: the interleavings of each spec in
classes of one outcome each, not a run's pass/fail per spec
(``_results``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._results import _int

__all__ = ["Failure", "ExploreClass", "ExploreSpec", "ExploreResult"]


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


def _opt_int(v: Any) -> Optional[int]:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


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
