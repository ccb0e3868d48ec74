"""This process's plugin state: the server, the runs, and each item's outcome.

When an item runs and no run covers it yet, one ``isospec run`` starts
over every spec this process will run from there on (the rest of the
session, or the xdist worker's queue); each item then waits for its spec
in that run, and passes, skips or fails with the spec's result.  At the
end of the session every run ends and the server stops.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from typing import Dict, List, NoReturn, Optional

import pytest

from ._batch import Batch, BatchPlace, pg_regress_out
from ._collect import SpecItem
from ._options import accept, is_worker, outputdir
from ._report import SpecFailure, failure_text
from ._server import NO_SERVER, Server, missing


class State:
    """This process's plugin state: the server, the runs, and which item
    each run serves."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.server = Server(config)
        self.batches: List[Batch] = []
        self.batch_of: Dict[str, Batch] = {}  # nodeid -> run serving it next
        self._tmpdir: Optional[str] = None
        self.outputdir = outputdir(config)
        self.cleared = False  # the outputs of an earlier session (xdist controller)

    @property
    def tmpdir(self) -> str:
        """A directory of this process's own (the runs' JSON reports)."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="isospec-pytest-")
        return self._tmpdir

    # -- which items a new run covers

    def _upcoming(self, session: pytest.Session, item: SpecItem) -> List[pytest.Item]:
        """The items this process will run from ``item`` on, as far as known:
        the rest of the session's items serially, the worker's queue under
        xdist (xdist's WorkerInteractor; only ``item`` if that cannot be read)."""
        items = session.items
        interactor = next(
            (p for p in self.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"),
            None,
        )
        if interactor is None:
            try:
                start = items.index(item)
            except ValueError:
                return [item]
            return list(items[start:])
        try:
            with interactor.torun.lock() as queue:
                queued = [i for i in queue if isinstance(i, int)]
            nxt = interactor.nextitem_index
            indices = ([nxt] if isinstance(nxt, int) else []) + queued
            return [item] + [items[i] for i in indices]
        except Exception:  # xdist's internals changed: one run per item
            return [item]

    def _new_batch(self, item: SpecItem, dsn: Optional[str]) -> Batch:
        chosen: List[SpecItem] = []
        names = set()
        for it in self._upcoming(item.session, item):
            if not isinstance(it, SpecItem) or it.spec_name in names:
                continue
            if it is not item and it.nodeid in self.batch_of:
                continue
            # Items that skip (markers) never ask for their result.
            if it is not item and any(it.iter_markers("skip")):
                continue
            chosen.append(it)
            names.add(it.spec_name)
        place = BatchPlace(self.config, self.outputdir, self.tmpdir, bool(self.server.info))
        batch = Batch(place, chosen, dsn, len(self.batches) + 1)
        self.batches.append(batch)
        for it in chosen:
            self.batch_of[it.nodeid] = batch
        return batch

    # -- running an item

    def run_item(self, item: SpecItem, conninfo: str) -> None:
        dsn, _ = self.server.resolved or (conninfo or None, "")
        batch = self.batch_of.pop(item.nodeid, None)
        if batch is None:
            batch = self._new_batch(item, dsn)
            self.batch_of.pop(item.nodeid, None)
        name = item.spec_name
        tap = batch.wait_for(name)
        if tap is not None and tap.ok and tap.skip is None and not accept(self.config):
            item.spec_duration = tap.ms / 1000.0 if tap.ms is not None else None
            item.user_properties.append(("isospec_status", "ok"))
            return
        if tap is not None and not tap.ok and self._ends_session(item):
            batch.stop()  # -x / --maxfail: the session ends with this failure
        results = batch.finish()
        r = results.get(name)
        if r is None:
            self._run_failed(batch, name)
        item.spec_duration = r.duration
        item.user_properties.append(("isospec_status", r.status))
        if r.result_file is not None:
            item.user_properties.append(("isospec_result_file", str(r.result_file)))
        if r.status == "ok":
            return
        if r.status == "accepted":
            item.user_properties.append(("isospec_accepted", r.detail or ""))
            return
        if r.status == "not-run":
            pytest.skip(f"isospec: {name} not run: {r.detail or 'interrupted'}")
        if r.where is not None:
            item.user_properties.append(("isospec_where", r.where.describe()))
        if r.annotation is not None:
            # isospec's own workflow command, printed at the session's end.
            item.user_properties.append(("isospec_annotation", r.annotation.command))
        text, short = failure_text(item.nodeid, r, batch.cwd, self.outputdir)
        raise SpecFailure(text, short)

    def _ends_session(self, item: SpecItem) -> bool:
        """Whether this failure will stop the session (-x, --maxfail)."""
        maxfail = self.config.getoption("maxfail", 0) or 0
        if not maxfail or any(item.iter_markers("xfail")):
            return False
        return item.session.testsfailed + 1 >= maxfail

    def _run_failed(self, batch: Batch, name: str) -> NoReturn:
        err = "\n".join(batch.stderr).strip()
        out = "\n".join(batch.stdout[-20:]).strip()
        why = err or out or "no output"
        if batch.returncode == 2 and not batch.tap and NO_SERVER.search(why):
            missing(self.config, why)
        raise SpecFailure(
            f"isospec run exited with status {batch.returncode} without a result for {name}:\n{why}\n\n"
            f"command: {' '.join(map(shlex.quote, batch.command))}",
            f"{name}: isospec run exited with status {batch.returncode}",
        )

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """The end of the session: every run ends (stopped first when the
        session stopped early) and has its outputs merged; the server stops."""
        early = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        for b in self.batches:
            if early:
                b.kill()
            try:
                b.finish()
            except Exception:  # a report we cannot read changes no outcome now
                pass
        self.server.stop()
        if not is_worker(self.config) and (self.batches or self.cleared):
            # After every worker merged its outputs: one regression.out.
            pg_regress_out(self.outputdir)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


# This process's plugin state (the server, the runs), made at configure time.
state_key = pytest.StashKey[State]()
