"""Suite-wide rules. Under CI=true a skipped test is a failure: the real PostgreSQL, Redis and
local model are on the CI machine, so nothing may quietly go untested there."""

from __future__ import annotations

import os

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
