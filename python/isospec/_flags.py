"""One table from the Python layer's keyword arguments to isospec's flags.

``run``, ``explore``, ``record`` and the pytest plugin all take their
settings as keyword arguments and pass them on as flags of the binary;
this is the one place that says which flag each one is and how its value
is written, so that a keyword means the same flag everywhere.
"""

import os
from collections.abc import Iterable
from enum import Enum
from typing import Dict, List, Tuple


class Kind(Enum):
    VALUE = "value"  # --flag VALUE, when not None
    SWITCH = "switch"  # --flag, when true
    EACH = "each"  # --flag VALUE for each item of a sequence


FLAGS: Dict[str, Tuple[str, Kind]] = {
    "dsn": ("--conninfo", Kind.VALUE),
    "temp_instance": ("--temp-instance", Kind.VALUE),
    "temp_config": ("--temp-config", Kind.VALUE),
    "bindir": ("--bindir", Kind.VALUE),
    "outputdir": ("--outputdir", Kind.VALUE),
    "inputdir": ("--inputdir", Kind.VALUE),
    "dbname": ("--dbname", Kind.VALUE),
    "accept": ("--accept", Kind.SWITCH),
    "jobs": ("--jobs", Kind.VALUE),
    "timeout": ("--timeout", Kind.VALUE),
    "schedule": ("--schedule", Kind.EACH),
    # explore
    "max": ("--max", Kind.VALUE),
    "seed": ("--seed", Kind.VALUE),
    "budget": ("--budget", Kind.VALUE),
    "preemptions": ("--preemptions", Kind.VALUE),
    "reduce": ("--reduce", Kind.SWITCH),
    "shrink": ("--shrink", Kind.SWITCH),
    "partition": ("--partition", Kind.VALUE),
    "outcome": ("--outcome", Kind.EACH),
    "invariant": ("--invariant", Kind.EACH),
    # record
    "output": ("-o", Kind.VALUE),
    "setup": ("--setup", Kind.VALUE),
    "teardown": ("--teardown", Kind.VALUE),
    "steps": ("--steps", Kind.VALUE),
    "keep_database": ("--keep-database", Kind.SWITCH),
}


def _text(value: object) -> str:
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else os.fsdecode(path)
    return str(value)


def flags(**settings: object) -> List[str]:
    """The flags for ``settings`` (keyword arguments named as in ``FLAGS``),
    in the order given; None, False and empty sequences give none."""
    args: List[str] = []
    for name, value in settings.items():
        flag, kind = FLAGS[name]
        if value is None or value is False:
            continue
        if kind is Kind.SWITCH:
            args.append(flag)
        elif kind is Kind.EACH:
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise TypeError(f"{name} takes a sequence, not {value!r}")
            for item in value:
                args += [flag, _text(item)]
        else:
            args += [flag, _text(value)]
    return args
