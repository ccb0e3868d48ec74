"""What an older isospec's run report lacks, worked out from its files.

A binary from before the run report carried ``diff`` and ``where`` (one
set with ``ISOSPEC_BIN``, or another ``isospec`` on ``PATH``) leaves only
``regression.diffs`` and ``results/NAME.out``: each spec's diff is its
chunk of ``regression.diffs``, and where its transcript departs is read
from that diff and the transcript.  A report that has the fields is used
as it is (``_results.spec_results``); nothing else reads these.
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Tuple

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


class Departure(NamedTuple):
    """The first change of a diff: the result file's line, the first
    differing lines, and the permutation and step it is in."""

    line: int
    expected: Optional[str]
    actual: Optional[str]
    permutation: Optional[int]
    permutations: Optional[int]
    permutation_steps: Tuple[str, ...]
    step: Optional[str]


def departure(diff: str, transcript: Optional[str]) -> Optional[Departure]:
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
        permutations = sum(1 for ln in lines if ln.startswith(_PERMUTATION))
        for ln in lines[: max(line_no, 1)]:
            if ln.startswith(_PERMUTATION):
                permutation = (permutation or 0) + 1
                permutation_steps = tuple(ln[len(_PERMUTATION) :].split())
                step = None
            else:
                sm = _STEP.match(ln)
                if sm:
                    step = sm.group(1)
    return Departure(line_no, expected, actual, permutation, permutations, permutation_steps, step)
