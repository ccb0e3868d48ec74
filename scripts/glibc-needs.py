#!/usr/bin/env python3
"""scripts/glibc-needs.py BINARY: the highest GLIBC_x.y symbol version an ELF
binary needs (its .gnu.version_r), or nothing for a binary that needs none.

Read with pyelftools (auditwheel's own dependency, in make dist's tool
venv), so that it works on a binary of any architecture, where objdump
reads only the host's.
"""

from __future__ import annotations

import sys

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection


def main() -> int:
    best: tuple[int, ...] = ()
    with open(sys.argv[1], "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if not isinstance(section, GNUVerNeedSection):
                continue
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    name = aux.name
                    if name.startswith("GLIBC_") and name[6:].replace(".", "").isdigit():
                        best = max(best, tuple(int(p) for p in name[6:].split(".")))
    if best:
        print(".".join(map(str, best)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
