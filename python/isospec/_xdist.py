"""pytest-xdist scheduling for spec items: all of a worker's specs at once.

xdist's default ``load`` scheduling hands a worker its tests a few at a
time, so a worker could only ever run isospec over a few specs at once.
This scheduler gives each worker its whole share of the specs up front
(balanced by the specs' durations in the last run, else their size), so
each worker runs one ``isospec run`` over all of them; every other test is
scheduled exactly as ``load`` schedules it.  Imported only when xdist is.
"""

from __future__ import annotations

import re
from itertools import cycle
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]

from ._collect import is_spec_nodeid


def balance(
    indices: Sequence[int],
    nodeids: Sequence[str],
    costs: Dict[str, float],
    nodes: int,
    first: Sequence[int] = (),
) -> List[List[int]]:
    """Splits ``indices`` into ``nodes`` shares of about equal cost (longest
    first onto the least loaded share), each share in collection order;
    the indices in ``first`` all go to share 0."""
    shares: List[List[int]] = [[] for _ in range(nodes)]
    load = [0.0] * nodes
    pinned = set(first)
    for i in indices:
        if i in pinned:
            shares[0].append(i)
            load[0] += costs.get(nodeids[i], 0.0)
    rest = [i for i in indices if i not in pinned]
    for i in sorted(rest, key=lambda i: (-costs.get(nodeids[i], 0.0), i)):
        k = min(range(nodes), key=lambda k: (load[k], k))
        shares[k].append(i)
        load[k] += costs.get(nodeids[i], 0.0)
    return [sorted(s) for s in shares]


def spec_costs(config: Any, nodeids: Sequence[str]) -> Dict[str, float]:
    """Each spec's expected cost: its duration in the last run (pytest's
    cache), else the mean of the known ones, else its file size (when no
    duration is known at all)."""
    known: Dict[str, float] = {}
    cache = getattr(config, "cache", None)
    if cache is not None:
        stored = cache.get("isospec/durations", {})
        if isinstance(stored, dict):
            known = {k: float(v) for k, v in stored.items() if isinstance(v, (int, float))}
    specs = [n for n in nodeids if is_spec_nodeid(n)]
    have = [known[n] for n in specs if n in known]
    if have:
        mean = sum(have) / len(have)
        return {n: known.get(n, mean) for n in specs}
    root = Path(config.rootpath)
    costs = {}
    for n in specs:
        try:
            costs[n] = float((root / n.partition("::")[0]).stat().st_size)
        except OSError:
            costs[n] = 1.0
    return costs


def names_database(config: Any, nodeid: str) -> bool:
    """Whether the spec names the test database (as isospec -j runs such
    a spec in the --dbname database): under xdist it goes to worker gw0,
    which keeps that name when the workers share a server."""
    name = str(config.getini("isospec_dbname") or "isolation_regression")
    try:
        text = (Path(config.rootpath) / nodeid.partition("::")[0]).read_text(errors="replace")
    except OSError:
        return False
    return re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text) is not None


class SpecLoadScheduling(LoadScheduling):  # type: ignore[misc]
    """``load`` scheduling, except that each worker gets its share of the
    spec items in one go, first."""

    collection: Optional[List[str]]
    maxschedchunk: Optional[int]

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        collection = list(next(iter(self.node2collection.values())))
        specs = [i for i, n in enumerate(collection) if is_spec_nodeid(n)]
        if not specs:
            super().schedule()
            return
        self.collection = collection
        if self.maxschedchunk is None:
            self.maxschedchunk = len(collection)
        # gw0 first: it keeps the database's name.
        nodes = sorted(self.nodes, key=lambda n: getattr(getattr(n, "gateway", None), "id", "") != "gw0")
        pinned = [i for i in specs if names_database(self.config, collection[i])]
        shares = balance(specs, collection, spec_costs(self.config, collection), len(nodes), pinned)
        for node, share in zip(nodes, shares):
            if share:
                self.node2pending[node].extend(share)
                node.send_runtest_some(share)
        spec_set = set(specs)
        self.pending[:] = [i for i in range(len(collection)) if i not in spec_set]
        if self.pending:
            # The rest as LoadScheduling.schedule sends it.
            if len(self.pending) < 2 * len(nodes):
                it = cycle(nodes)
                for _ in range(len(self.pending)):
                    self._send_tests(next(it), 1)
            else:
                items_per_node = len(self.pending) // len(nodes)
                chunk = max(min(items_per_node // 4, self.maxschedchunk), 2)
                for node in nodes:
                    self._send_tests(node, chunk)
        if not self.pending:
            for node in nodes:
                node.shutdown()
