"""Hooks the isospec pytest plugin adds (``conftest.py`` may implement them)."""

from __future__ import annotations

from typing import Optional

import pytest


@pytest.hookspec(firstresult=True)
def pytest_isospec_dsn(config: pytest.Config) -> Optional[str]:
    """Return the libpq conninfo (or URI) of the server the specs run against.

    Called once per test process, when the first spec runs or when a test
    asks for the ``isospec_server`` fixture, by the default ``isospec_dsn``
    fixture.  Return ``None`` to let isospec choose (``isospec_dsn`` ini
    option, libpq's ``PG*`` variables, else a temporary instance).
    ``--isospec-dsn`` on the command line wins over this hook.
    """
