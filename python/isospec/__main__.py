"""``python -m isospec …``: the isospec binary with the same arguments."""

from __future__ import annotations

import os
import subprocess
import sys

from ._binary import IsospecNotFound, binary


def main() -> int:
    """Runs the installed isospec binary with this process's arguments."""
    try:
        exe = str(binary())
    except IsospecNotFound as e:
        print(f"isospec: {e}", file=sys.stderr)
        return 127
    args = [exe, *sys.argv[1:]]
    if os.name == "posix":
        # Replace this process: signals, exit codes and the terminal are
        # the binary's own, as if it had been called directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(exe, args)
    return subprocess.call(args)  # pragma: no cover - Windows


if __name__ == "__main__":
    sys.exit(main())
