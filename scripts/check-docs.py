#!/usr/bin/env python3
"""make check-docs: the documentation cannot drift from the tool.

1. Links. Every relative link in README.md and docs/**/*.md resolves to a
   file of the repository, and a `#fragment` names a heading of the target
   (GitHub's slug rule, duplicates numbered). python/README.md is what PyPI
   shows, where relative links break: it may hold absolute links only.
2. Examples. A fence of shell commands is either ```sh, which this script
   runs, or ```sh illustrative, which it does not. Other shell labels
   (bash, shell, console, zsh) are refused so that nothing slips past
   unmarked. The ```sh blocks of one file run in order, each as
   `bash -euo pipefail`, in a fresh copy of the repository's files, with the
   built isospec first on PATH and PGHOST/PGPORT/PGUSER naming a throwaway
   server (`isospec temp-instance`); each must exit 0 within --block-timeout
   seconds.

Exit status 0 when every check passes, 1 otherwise (each failure printed as
FILE:LINE: what).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_LABELS = {"bash", "shell", "console", "zsh", "shell-session", "sh-session"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass
class Block:
    path: Path
    line: int  # line of the opening fence, 1-based
    info: str
    text: str


def parse(path: Path) -> tuple[list[tuple[int, str]], list[Block], list[str]]:
    """Lines outside fences (for links and headings), the fenced blocks, and headings."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    headings: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            marker, info = m.group(2), m.group(3).strip()
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines):
                close = FENCE.match(lines[i])
                if close and close.group(2)[0] == marker[0] and len(close.group(2)) >= len(marker) \
                        and not close.group(3).strip():
                    break
                body.append(lines[i])
                i += 1
            blocks.append(Block(path, start + 1, info, "\n".join(body) + "\n"))
            i += 1
            continue
        h = HEADING.match(lines[i])
        if h:
            headings.append(h.group(2))
        prose.append((i + 1, lines[i]))
        i += 1
    return prose, blocks, headings


def slugs(headings: list[str]) -> set[str]:
    """GitHub's anchors: lowercase, punctuation dropped, spaces to hyphens, duplicates numbered."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for text in headings:
        text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), text)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def check_links(files: list[Path], absolute_only: list[Path]) -> list[str]:
    errors: list[str] = []
    anchors: dict[Path, set[str]] = {}

    def anchors_of(p: Path) -> set[str]:
        if p not in anchors:
            anchors[p] = slugs(parse(p)[2])
        return anchors[p]

    for path in files + absolute_only:
        prose, _, _ = parse(path)
        rel = path.relative_to(ROOT)
        for lineno, line in prose:
            targets = [m.group(1) for m in LINK.finditer(INLINE_CODE.sub("", line))]
            ref = REF_DEF.match(line)
            if ref:
                targets.append(ref.group(1))
            for target in targets:
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # https:, mailto:, …
                if path in absolute_only:
                    errors.append(f"{rel}:{lineno}: relative link {target!r} (PyPI shows this file: use an absolute URL)")
                    continue
                file_part, _, fragment = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                if not dest.exists():
                    errors.append(f"{rel}:{lineno}: link to {target!r}: {file_part} does not exist")
                    continue
                try:
                    dest.relative_to(ROOT)
                except ValueError:
                    errors.append(f"{rel}:{lineno}: link to {target!r} leaves the repository")
                    continue
                if fragment and dest.suffix == ".md" and fragment not in anchors_of(dest):
                    errors.append(f"{rel}:{lineno}: link to {target!r}: no heading with anchor #{fragment} in "
                                  f"{dest.relative_to(ROOT)}")
    return errors


def check_labels(files: list[Path]) -> tuple[list[str], dict[Path, list[Block]]]:
    errors: list[str] = []
    runnable: dict[Path, list[Block]] = {}
    for path in files:
        rel = path.relative_to(ROOT)
        for block in parse(path)[1]:
            words = block.info.split()
            lang = words[0].lower() if words else ""
            if lang in SHELL_LABELS:
                errors.append(f"{rel}:{block.line}: a ```{lang} fence: label shell commands ```sh (run by "
                              "make check-docs) or ```sh illustrative (not run)")
            elif lang == "sh":
                if words[1:] == ["illustrative"]:
                    continue
                if len(words) > 1:
                    errors.append(f"{rel}:{block.line}: unknown fence label {block.info!r} "
                                  "(```sh or ```sh illustrative)")
                    continue
                runnable.setdefault(path, []).append(block)
    return errors, runnable


def repository_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def run_examples(runnable: dict[Path, list[Block]], isospec: Path, timeout: int) -> list[str]:
    errors: list[str] = []
    files = repository_files()
    with tempfile.TemporaryDirectory(prefix="isospec-docs-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o755)  # the instance's OS user must reach its directory
        bindir = tmpdir / "bin"
        bindir.mkdir()
        shutil.copy2(isospec, bindir / "isospec")
        server = subprocess.Popen([str(bindir / "isospec"), "temp-instance", str(tmpdir / "server"),
                                   "--temp-config", str(ROOT / "conf/isolation.conf")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            if not first:
                return [f"isospec temp-instance exited ({server.wait()}) without starting a server"]
            info = json.loads(first)
            env = dict(os.environ)
            for var in [v for v in env if v.startswith(("PG", "ISOSPEC_"))]:
                del env[var]
            env.update(PATH=f"{bindir}:{env['PATH']}", PGHOST=info["host"], PGPORT=str(info["port"]),
                       PGUSER=info["user"], NO_COLOR="1")
            for n, (path, blocks) in enumerate(sorted(runnable.items())):
                rel = path.relative_to(ROOT)
                work = tmpdir / f"repo-{n}"
                for f in files:
                    (work / f).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / f, work / f)
                for block in blocks:
                    try:
                        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                                             capture_output=True, text=True, timeout=timeout)
                    except subprocess.TimeoutExpired:
                        errors.append(f"{rel}:{block.line}: the example did not finish within {timeout} s")
                        continue
                    if res.returncode != 0:
                        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
                        errors.append(f"{rel}:{block.line}: the example exited {res.returncode}:\n"
                                      f"{block.text}--- its output (last lines):\n{tail}")
                    else:
                        print(f"check-docs: {rel}:{block.line}: ran ({len(block.text.splitlines())} lines)")
        finally:
            if server.stdin:
                server.stdin.close()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--isospec", default=str(ROOT / "target/release/isospec"), help="the binary the examples run")
    ap.add_argument("--no-run", action="store_true", help="check links and labels only")
    ap.add_argument("--block-timeout", type=int, default=180)
    ap.add_argument("--extract", metavar="FILE",
                    help="print FILE's runnable ```sh blocks as JSON ([{line, text}]) and exit "
                         "(for checks that run them elsewhere: make check-install)")
    args = ap.parse_args()
    if args.extract:
        path = Path(args.extract).resolve()
        _, runnable = check_labels([path])
        print(json.dumps([{"line": b.line, "text": b.text} for b in runnable.get(path, [])]))
        return 0

    files = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    pypi = [ROOT / "python/README.md"]
    errors = check_links(files, pypi)
    label_errors, runnable = check_labels(files + pypi)
    errors += label_errors
    total = sum(len(b) for b in runnable.values())
    if not args.no_run:
        isospec = Path(args.isospec).resolve()
        if not isospec.is_file():
            errors.append(f"{isospec}: no such binary (make build)")
        else:
            errors += run_examples(runnable, isospec, args.block_timeout)
    for e in errors:
        print(f"check-docs: {e}", file=sys.stderr)
    links = sum(len(LINK.findall(p.read_text(encoding="utf-8"))) for p in files + pypi)
    print(f"check-docs: {len(files) + len(pypi)} files, {links} links, {total} runnable examples"
          f"{'' if args.no_run else ' run'}: {'ok' if not errors else f'{len(errors)} problem(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
