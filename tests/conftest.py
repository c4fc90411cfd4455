"""Suite-wide rules and fixtures. Under CI=true a skipped test is a failure: the real
PostgreSQL, Redis and local model are on the CI machine, so nothing may quietly go untested
there. ``errors_in_cycles`` finds what a block leaves for the cyclic collector."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

CI = os.environ.get("CI") == "true"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not CI or reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        for report in skipped:
            reporter.write_line(f"SKIPPED UNDER CI (counts as a failure): {report.nodeid} "
                                f"{report.longrepr}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@contextlib.contextmanager
def _errors_in_cycles() -> Iterator[list[BaseException]]:
    """The errors among what the block leaves for the cyclic collector (objects in reference
    cycles, which reference counting cannot free), in the list it yields, once it ends. Raise
    nothing out of the block with ``pytest.raises``: its record of the error is a cycle of its
    own (``contextlib.suppress`` keeps none)."""
    left: list[BaseException] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield left
        gc.collect()
        left.extend(o for o in gc.garbage if isinstance(o, BaseException))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.fixture
def errors_in_cycles() -> Callable[[], AbstractContextManager[list[BaseException]]]:
    return _errors_in_cycles
