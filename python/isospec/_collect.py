"""Collection: which ``*.spec`` files are tests, and their items.

A ``.spec`` file is a test when it is in an ``isospec_specs`` directory or
named on the command line, never merely because pytest walks past it (it
may be another tool's, an RPM spec say).  Each spec is one item, a
``pytest.Function`` so that fixtures and ``conftest.py`` work as for any
test; its result comes from the session's ``isospec run`` (``_session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import pytest

from ._options import spec_dirs
from ._report import Crash, SpecFailure, SpecRepr

# How a spec item runs: the plugin state's ``run_item`` (``_session``),
# set at configure time, so that this module does not import it.
run_key = pytest.StashKey[Callable[["SpecItem", str], None]]()


def is_spec_nodeid(nodeid: str) -> bool:
    """Whether ``nodeid`` is a spec item's (``path/NAME.spec::NAME``)."""
    head, sep, _ = nodeid.partition("::")
    return bool(sep) and head.endswith(".spec")


def _explicit_args(config: pytest.Config) -> List[Path]:
    """The paths named on the command line (not testpaths, nor the
    directory pytest walks when it is given nothing: there a ``.spec`` file
    may be another tool's, an RPM spec say, unless it is in an
    ``isospec_specs`` directory)."""
    kinds = getattr(pytest.Config, "ArgsSource", None)
    if kinds is None or getattr(config, "args_source", None) != kinds.ARGS:
        return []
    base = config.invocation_params.dir
    out = []
    for a in config.args:
        p = Path(a.split("::", 1)[0])
        out.append(p if p.is_absolute() else base / p)
    return out


def _under(path: Path, roots: Sequence[Path]) -> bool:
    path = path.resolve()
    for r in roots:
        r = r.resolve()
        if path == r or r in path.parents:
            return True
    return False


def add_spec_dirs(config: pytest.Config) -> None:
    """``pytest`` without arguments: the ``isospec_specs`` directories are
    test directories too, beside testpaths."""
    kinds = getattr(pytest.Config, "ArgsSource", None)
    if kinds is not None and getattr(config, "args_source", None) != kinds.ARGS:
        current = [Path(a.split("::", 1)[0]) for a in config.args]
        current = [p if p.is_absolute() else config.invocation_params.dir / p for p in current]
        for d in spec_dirs(config):
            if d.is_dir() and not _under(d, current):
                config.args.append(str(d))


def collect_file(file_path: Path, parent: pytest.Collector) -> Optional["SpecFile"]:
    """``pytest_collect_file``: a ``SpecFile`` for a spec that is a test."""
    if file_path.suffix != ".spec":
        return None
    config = parent.config
    if not (_under(file_path, spec_dirs(config)) or _under(file_path, _explicit_args(config))):
        return None
    return SpecFile.from_parent(parent, path=file_path)


def _spec_test(isospec_server: str) -> None:  # pragma: no cover - never called
    """Runs one isolation spec through isospec (see SpecItem.runtest)."""


class SpecFile(pytest.File):
    """A ``.spec`` file: one item, named by the spec."""

    def collect(self) -> Iterator["SpecItem"]:
        yield SpecItem.from_parent(self, name=self.path.stem, callobj=_spec_test)


class SpecItem(pytest.Function):
    """One spec.  A ``pytest.Function`` so that fixtures (``isospec_server``
    and whatever ``isospec_dsn`` depends on) and ``conftest.py`` work as for
    any test; ``runtest`` takes its result from the session's isospec run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_marker("isospec")
        self.spec_duration: Optional[float] = None

    @property
    def spec_name(self) -> str:
        return self.path.stem

    def runtest(self) -> None:
        conninfo = self.funcargs["isospec_server"]
        self.config.stash[run_key](self, str(conninfo))

    def reportinfo(self) -> Tuple[Any, Optional[int], str]:
        return self.path, None, f"isospec: {self.spec_name}"

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, SpecFailure):
            e = excinfo.value
            return SpecRepr(e.text, Crash(str(self.path), 0, e.short))
        return super().repr_failure(excinfo)
