#!/usr/bin/env python3
"""scripts/wheel-binary.py WHEEL DIR: extracts the wheel's isospec binary
(NAME.data/scripts/isospec) into DIR/isospec, so that the release archives
hold exactly the binary the wheels carry. Used by make dist and the release
workflow."""

import os
import sys
import zipfile

if len(sys.argv) != 3:
    sys.exit("usage: wheel-binary.py WHEEL DIR")
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".data/scripts/isospec")]
    if len(names) != 1:
        sys.exit(f"{wheel}: expected one .data/scripts/isospec, found {names}")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "isospec")
    with open(path, "wb") as f:
        f.write(z.read(names[0]))
    os.chmod(path, 0o755)
print(os.path.join(out, "isospec"))
