"""The pytest plugin, run by pytester: a dataset becomes one test per case with a threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def plugin() -> list[str]:
    """Load the plugin by hand only where buttress is not installed: an installed buttress
    (``dev.py test``) registers it through its pytest11 entry point, and loading it twice
    is an error."""
    from importlib.metadata import entry_points

    installed = any(ep.name == "buttress" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "buttress.evals.pytest_plugin"]

CONFIG = """
[providers.fake]
type = "fake"
[models.fake]
provider = "fake"
model = "fake-1"
[features.echo]
prompt = "echo"
models = ["fake"]
[ledger]
enabled = false
"""
PROMPT = "---\ndescription: echo\n---\n[user]\n{{ ticket }}\n"


def project(pytester: pytest.Pytester) -> Path:
    root = pytester.path
    (root / "buttress.toml").write_text(CONFIG)
    (root / "prompts").mkdir()
    (root / "prompts" / "echo.md").write_text(PROMPT)
    (root / "evals").mkdir()
    cases = [{"id": "refund", "inputs": {"ticket": "refund please"}, "expected": "refund"},
             {"id": "bug", "inputs": {"ticket": "app crashes"}, "expected": "broken"},
             {"id": "mixed", "inputs": {"ticket": "refund for the crash"},
              "expected": ["refund", "invoice"]}]
    (root / "evals" / "echo.yaml").write_text(json.dumps(
        {"feature": "echo", "scorers": [{"name": "contains", "params": {"mode": "any"}},
                                        {"name": "contains", "label": "all"}],
         "cases": cases}))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return root


def test_each_case_is_a_test_and_the_threshold_decides(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.buttress_eval("evals/echo.yaml", min_score=0.5)
        def test_echo(buttress_case):
            buttress_case.check()
    """)
    result = pytester.runpytest(*plugin(), "-v")
    # refund: both scorers pass (1.0); mixed: `any` passes, `all` fails (0.5 >= 0.5);
    # bug: the echo never says "broken" (0.0)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_echo?refund? PASSED*", "*test_echo?bug? FAILED*",
                                 "*test_echo?mixed? PASSED*"])
    result.stdout.fnmatch_lines(["*case 'bug': score 0.000 < 0.5*", "*contains: 0.00*"])


def test_default_threshold_is_every_scorer_passing(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.buttress_eval("evals/echo.yaml", feature="echo")
        def test_echo(buttress_case):
            result = buttress_case.check()
            assert result.passed
    """)
    result = pytester.runpytest(*plugin())
    result.assert_outcomes(passed=1, failed=2)


def test_misuse_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.buttress_eval("evals/echo.yaml", min_scor=0.5)
        def test_echo(buttress_case):
            pass
    """)
    result = pytester.runpytest(*plugin())
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown buttress_eval option(s): min_scor*"])


def test_a_malformed_dataset_names_file_and_line(pytester: pytest.Pytester) -> None:
    root = project(pytester)
    (root / "evals" / "echo.yaml").write_text("- id: a\n- id: b\n  weight: heavy\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.buttress_eval("evals/echo.yaml", feature="echo")
        def test_echo(buttress_case):
            pass
    """)
    result = pytester.runpytest(*plugin())
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*echo.yaml:3*"])


def test_entry_point_is_declared() -> None:
    import tomllib

    data = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {
        "buttress": "buttress.evals.pytest_plugin"}
