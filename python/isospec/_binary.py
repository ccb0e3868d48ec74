"""Finding the isospec binary that belongs to this installation."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["IsospecNotFound", "binary"]

_EXE = "isospec.exe" if os.name == "nt" else "isospec"


class IsospecNotFound(RuntimeError):
    """The isospec binary is neither installed beside this package nor on PATH."""


def _script_dirs() -> list[Path]:
    dirs = [Path(sysconfig.get_path("scripts"))]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        try:
            dirs.append(Path(sysconfig.get_path("scripts", user_scheme)))
        except KeyError:  # pragma: no cover - unusual interpreters
            pass
    dirs.append(Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin"))
    return dirs


def binary() -> Path:
    """The path of the isospec binary this package drives.

    In order: the ``ISOSPEC_BIN`` environment variable (for a binary built
    by hand, e.g. ``target/release/isospec``); the binary the wheel
    installed into the environment's scripts directory (``bin/`` of a
    virtual environment), so that the plugin and the binary always come
    from the same release; else ``isospec`` on ``PATH``.

    Raises:
        IsospecNotFound: when none of these exists.
    """
    explicit = os.environ.get("ISOSPEC_BIN")
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise IsospecNotFound(f"ISOSPEC_BIN={explicit} is not an executable file")
    for d in _script_dirs():
        p = d / _EXE
        if p.is_file() and os.access(p, os.X_OK):
            return p
    found = shutil.which("isospec")
    if found:
        return Path(found)
    raise IsospecNotFound(
        "the isospec binary is not installed: `pip install isospec` puts it into the "
        "environment's bin/ directory (or set ISOSPEC_BIN to a built binary)"
    )
