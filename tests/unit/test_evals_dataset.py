"""Datasets (YAML and JSONL, errors with file and line) and the sealed holdout lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.errors import ConfigError
from buttress.evals.dataset import find_dataset, load_dataset
from buttress.evals.holdout import HoldoutLock

SUITE = """\
feature: triage
scorers:
  - name: label
    params: {field: category}
gate: {max_slice_drop: 0.1}
cases:
  - id: a
    inputs: {ticket: "refund please"}
    expected: {category: refund}
    tags: [refund]
  - id: b
    inputs: {ticket: "app crashes"}
    expected: {category: bug}
    tags: [bug]
    weight: 2
    notes: crash on login
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_dataset_reads_cases_settings_and_content_version(tmp_path: Path) -> None:
    path = write(tmp_path, "triage.yaml", SUITE)
    data = load_dataset(path)
    assert data.name == "triage"
    assert data.split == "main"
    assert [c.id for c in data.cases] == ["a", "b"]
    assert data.cases[1].weight == 2
    assert data.cases[0].weight == 1
    assert data.slices == ["bug", "refund"]
    assert data.settings.feature == "triage"
    assert data.settings.scorers[0].params == {"field": "category"}
    assert data.settings.gate.max_slice_drop == 0.1
    before = data.version
    path.write_text(SUITE.replace("crash on login", "crash on start"))
    assert load_dataset(path).version != before


def test_a_bad_case_names_the_file_and_line(tmp_path: Path) -> None:
    text = SUITE.replace("    weight: 2\n", "    weight: -1\n")
    path = write(tmp_path, "triage.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_dataset(path)
    assert info.value.line == 15  # the `weight:` line of case b
    assert str(path) in str(info.value)
    assert "case 'b'" in str(info.value)


def test_an_unknown_case_key_and_a_duplicate_id_name_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "- id: a\n  inputz: {}\n")
    with pytest.raises(ConfigError, match="unknown key") as info:
        load_dataset(path)
    assert info.value.line == 2
    path = write(tmp_path, "t.yaml", "- id: a\n- id: b\n- id: a\n")
    with pytest.raises(ConfigError, match="duplicate case id 'a'") as info:
        load_dataset(path)
    assert info.value.line == 3


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "- id: a\n- id: [b\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_dataset(path)
    assert info.value.line is not None
    assert info.value.line >= 2


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    good = '{"id": "a", "inputs": {"x": 1}, "expected": "1"}\n'
    path = write(tmp_path, "d.jsonl", good + "\n" + '{"id": "b", "weight": "heavy"}\n')
    with pytest.raises(ConfigError, match="weight") as info:
        load_dataset(path)
    assert info.value.line == 3
    path = write(tmp_path, "d.jsonl", good + "{not json}\n")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_dataset(path)
    assert info.value.line == 2
    path = write(tmp_path, "d.jsonl", good)
    assert load_dataset(path).cases[0].expected == "1"


def test_an_empty_dataset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cases"):
        load_dataset(write(tmp_path, "e.yaml", "[]\n"))


def test_holdout_is_found_sealed_counted_and_edits_detected(tmp_path: Path) -> None:
    write(tmp_path, "triage.yaml", SUITE)
    path = write(tmp_path, "triage.holdout.yaml", "- id: h1\n  expected: x\n")
    assert find_dataset(tmp_path, "triage", "holdout") == path
    data = load_dataset(path)
    assert data.split == "holdout"
    assert data.name == "triage"
    lock = HoldoutLock(tmp_path / "holdout.lock")
    assert lock.check(data).version == data.version
    assert lock.record_use(data, 1.0).uses == 1
    assert lock.record_use(data, 2.0).uses == 2
    path.write_text("- id: h1\n  expected: y\n")
    edited = load_dataset(path)
    with pytest.raises(ConfigError, match="HOLDOUT EDITED") as info:
        lock.check(edited)
    assert str(path) in str(info.value)
    assert "2 use(s)" in str(info.value)
    resealed = lock.check(edited, reseal=True)
    assert resealed.version == edited.version
    assert resealed.uses == 2
