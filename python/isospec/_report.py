"""What pytest shows of the specs: failure texts and the session's summary.

A spec that did not pass fails with a text of its own (where its
transcript departs, the diff or the new transcript, the commands that
accept it), coloured on a terminal, and a one-line summary.  At the end of
the session: under GitHub Actions, the failing specs' ``::error``
annotations, printed as isospec wrote them into its JSON report (the
plugin builds none of its own; only the line that counts those past the
cap is the plugin's, as a session's specs may come from several runs);
the transcripts accepted; where the temporary instance's logs are.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from ._results import SpecResult, Violation


class SpecFailure(Exception):
    """A spec that did not pass: carries the report text."""

    def __init__(self, text: str, short: str):
        super().__init__(short)
        self.text = text
        self.short = short


@dataclass
class Crash:
    path: str
    lineno: int
    message: str


class SpecRepr:
    """The failure report of a spec: plain text with its diff, coloured on
    a terminal; ``reprcrash`` gives pytest's short summary line."""

    def __init__(self, text: str, crash: Crash):
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
        for i, ln in enumerate(w.message.splitlines()):
            lines.append(("  why:      " if i == 0 else "            ") + ln)
    return lines


def failure_text(nodeid: str, r: SpecResult, cwd: Path, outputdir: Path) -> Tuple[str, str]:
    """The report of a spec that did not pass, and its one-line summary.
    ``cwd`` is its run's directory, ``outputdir`` the session's."""
    name = r.name
    result = os.path.relpath(r.result_file, cwd) if r.result_file is not None else None
    accept_cmd = f"pytest --isospec-accept {shlex.quote(nodeid)}"
    out_opt = ""
    if outputdir != cwd:
        out_opt = f" --outputdir {shlex.quote(os.path.relpath(outputdir, cwd))}"
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
        expected_dir = _manifest_dir(outputdir, name) or "expected"
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
    elif r.status == "invariant-violated":
        lines.append(f"{name}: {_violated(r.violations)}")
        lines += [f"  {v.describe()}" for v in r.violations] or [f"  {r.detail or '(no detail)'}"]
        lines += _where_lines(r, cwd)
        short = f"{name}: " + (
            r.violations[0].describe() if r.violations else "invariant violated"
        )
    else:
        what = "the spec could not be loaded" if r.status == "spec-error" else r.status.replace("-", " ")
        lines.append(f"{name}: {what}:")
        lines.append(r.detail or "(no detail)")
        lines += _where_lines(r, cwd)
        first = (r.detail or "").strip().splitlines()
        short = title or (f"{name}: {what}: {first[0]}" if first else f"{name}: {what}")
    if r.violations and r.status != "invariant-violated":
        # The transcript differs too: every violated invariant is still named.
        lines.insert(1, f"  also:     {_violated(r.violations)}:")
        for i, v in enumerate(r.violations):
            lines.insert(2 + i, f"            {v.describe()}")
        # First, so that pytest's shortened summary line keeps it.
        rest = short[len(name) + 2 :] if short.startswith(f"{name}: ") else short
        v0 = r.violations[0]
        what = f"permutation {v0.permutation} not serializable" if v0.kind == "anomaly" else f"invariant violated: {v0.invariant}"
        short = f"{name}: {what}; {rest}"
    return "\n".join(lines) + "\n", short


def _violated(violations: Sequence[Violation]) -> str:
    """``2 invariants violated``, ``1 permutation not serializable``, or both."""
    anomalies = sum(1 for v in violations if v.kind == "anomaly")
    parts = []
    if len(violations) > anomalies:
        parts.append(f"{_counted(len(violations) - anomalies, 'invariant', 'invariants')} violated")
    if anomalies:
        parts.append(f"{_counted(anomalies, 'permutation', 'permutations')} not serializable")
    return ", ".join(parts) or "0 invariants violated"


def _counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _manifest_dir(outputdir: Path, name: str) -> Optional[str]:
    """The expected/ directory isospec compared spec ``name`` with (its
    accept manifest), relative to the run's directory."""
    try:
        text = (outputdir / "results" / ".isospec-manifest").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        n, _, d = line.partition("\t")
        if n == name and d:
            return d
    return None


def _properties(terminalreporter: Any, kinds: Tuple[str, ...], key: str) -> List[str]:
    """The values of the user property ``key`` of the reports of these kinds."""
    return [
        str(v)
        for kind in kinds
        for rep in terminalreporter.stats.get(kind, [])
        for k, v in getattr(rep, "user_properties", []) or []
        if k == key
    ]


def terminal_summary(terminalreporter: Any, github: bool, temp_instance: Optional[str]) -> None:
    """The end of the session's output: under GitHub Actions (``github``)
    the failing specs' annotations, then the transcripts accepted, then
    where the temporary instance's logs are (its directory)."""
    accepted = _properties(terminalreporter, ("passed",), "isospec_accepted")
    if github:
        # Workflow commands: GitHub shows each failing spec on the pull
        # request's diff at the line where it departs.  Each is isospec's
        # own (the JSON report's annotation.command), printed as it is;
        # GitHub shows the first ten of a step, the log has them all.
        for line in _properties(terminalreporter, ("failed", "error"), "isospec_annotation"):
            terminalreporter.write_line(line)
    if accepted:
        terminalreporter.write_sep("-", "isospec: accepted transcripts")
        for a in accepted:
            terminalreporter.write_line(a)
    if temp_instance is not None:
        terminalreporter.write_line(f"isospec: the specs ran on a temporary instance (logs in {temp_instance}/log)")
