"""isospec from Python: isolation specs for PostgreSQL.

The distribution installs three things that always come from one release:

* the ``isospec`` binary (on the environment's ``PATH``; also
  ``python -m isospec``);
* a pytest plugin (``isospec.pytest_plugin``, loaded by pytest through its
  ``pytest11`` entry point) that collects ``*.spec`` files as tests;
* this small API for scripted use::

    import isospec

    result = isospec.run(["specs/"], dsn="host=localhost port=5432")
    for spec in result.specs:
        print(spec.name, spec.status, spec.duration)
        if spec.diff:
            print(spec.where.describe() if spec.where else "", spec.diff)

    found = isospec.explore("specs/lost-update.spec", max=1000, seed=1)
    for cls in found.specs[0].classes:
        print(cls.count, cls.permutation, cls.description)

    # A thread-pool test, recorded into a spec through isospec's proxy.
    rec = isospec.record(["python3", "ids.py"], "specs/ids.spec", setup="setup.sql")
    print(rec.returncode, rec.sessions, rec.steps, rec.warnings)
"""

from __future__ import annotations

from ._api import IsospecError, explore, run
from ._binary import IsospecNotFound, binary
from ._explore import ExploreClass, ExploreResult, ExploreSpec, Failure
from ._record import RecordResult, record
from ._results import Annotation, RunResult, SpecResult, Status, StepTiming, Violation, Where


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown"
    try:
        return version("isospec")
    except PackageNotFoundError:
        return "unknown"


#: The version of this distribution, which is the binary's (Cargo.toml's).
__version__: str = _version()

__all__ = [
    "__version__",
    "binary",
    "run",
    "explore",
    "record",
    "RecordResult",
    "IsospecError",
    "IsospecNotFound",
    "RunResult",
    "SpecResult",
    "Status",
    "StepTiming",
    "Where",
    "Violation",
    "Annotation",
    "ExploreResult",
    "ExploreSpec",
    "ExploreClass",
    "Failure",
]
