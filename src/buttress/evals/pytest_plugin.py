"""pytest integration: a dataset run as parametrised tests, one test per case, with a threshold.

Registered as the ``buttress`` pytest plugin (entry point ``pytest11``), or load it with
``-p buttress.evals.pytest_plugin``::

    @pytest.mark.buttress_eval("evals/triage.yaml", feature="triage", min_score=0.8)
    def test_triage(buttress_case):
        buttress_case.check()        # runs the case through the feature and scores it

A case passes when its score (the mean of the suite's scorers) reaches ``min_score``; a failure
says which scorer fell short and why. Paths are relative to ``project`` (default: pytest's
rootdir), which holds ``buttress.toml``. ``model``, ``prompt_version`` and ``params`` select a
variant. A test without the marker is untouched; loading the plugin does nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from buttress.evals.dataset import Case, Dataset, load_dataset
from buttress.evals.results import CaseResult, Variant

MARKER = "buttress_eval"
FIXTURE = "buttress_case"


@dataclass(frozen=True)
class EvalCase:
    """One dataset case bound to a feature and a threshold; ``check()`` runs and asserts."""

    case: Case
    dataset: Dataset
    feature: str
    project: Path
    min_score: float = 1.0
    variant: Variant = field(default_factory=Variant)

    def run(self) -> CaseResult:
        return asyncio.run(self._run())

    async def _run(self) -> CaseResult:
        from buttress.client import AsyncClient
        from buttress.evals.experiment import Experiment

        one = Dataset(name=self.dataset.name, path=self.dataset.path, split=self.dataset.split,
                      cases=(self.case,), version=self.dataset.version,
                      settings=self.dataset.settings)
        async with AsyncClient.from_config(self.project / "buttress.toml") as client:
            run = await Experiment(client, self.feature, one, variants=[self.variant],
                                   concurrency=1).run()
        return run.results[0]

    def check(self) -> CaseResult:
        """Run the case; fail the test when its score is below ``min_score``."""
        result = self.run()
        if result.value + 1e-12 < self.min_score:
            lines = [f"case {self.case.id!r}: score {result.value:.3f} < {self.min_score}"]
            if result.error:
                lines.append(f"  error: {result.error}")
            lines += [f"  {key}: {s.value:.2f} {s.detail}" for key, s in result.scores.items()
                      if not s.passed]
            if result.output is not None:
                lines.append(f"  output: {result.output[:300]}")
            pytest.fail("\n".join(lines), pytrace=False)
        return result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(path, feature=None, min_score=1.0, project=None, model=None, "
        "prompt_version=None, params=None): run each case of the dataset at PATH through "
        f"FEATURE as its own test, via the `{FIXTURE}` argument")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    if FIXTURE not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: a test marked {MARKER} takes "
                                f"a `{FIXTURE}` argument")
    if len(marker.args) != 1:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: {MARKER} takes one dataset "
                                "path")
    options: dict[str, Any] = dict(marker.kwargs)
    unknown = set(options) - {"feature", "min_score", "project", "model", "prompt_version",
                              "params"}
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown {MARKER} option(s): "
                                f"{', '.join(sorted(unknown))}")
    project = Path(options.get("project") or metafunc.config.rootpath)
    data = load_dataset(project / marker.args[0])
    feature = options.get("feature") or data.settings.feature or data.name
    variant = Variant(model=options.get("model"), prompt_version=options.get("prompt_version"),
                      params=dict(options.get("params") or {}))
    bound = [EvalCase(case=c, dataset=data, feature=feature, project=project,
                      min_score=float(options.get("min_score", 1.0)), variant=variant)
             for c in data.cases]
    metafunc.parametrize(FIXTURE, bound, ids=[c.id for c in data.cases])
