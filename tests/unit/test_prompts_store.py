"""The prompt store: loading and caching, git history and commits, labels and environments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from buttress.errors import ConfigError
from buttress.prompts import GitHistory, PromptStore, content_version, split_ref
from buttress.types import Message

V1 = "---\ndescription: first\n---\nHello {{ name }}\n"
V2 = "---\ndescription: second\n---\nHi there {{ name }}\n"
V3 = "---\ndescription: third\n---\nGreetings {{ name }}\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def write(root: Path, name: str, text: str) -> Path:
    path = root / "prompts" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "--short", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding three committed versions of prompts/greet.md."""
    git(tmp_path, "init", "-q")
    for number, text in enumerate((V1, V2, V3), 1):
        write(tmp_path, "greet", text)
        commit(tmp_path, f"v{number}")
    return tmp_path


def test_names_are_sorted_and_nested(tmp_path: Path) -> None:
    write(tmp_path, "b", "x")
    write(tmp_path, "a", "x")
    write(tmp_path, "team/c", "x")
    (tmp_path / "prompts" / "notes.txt").write_text("not a prompt")
    assert PromptStore(tmp_path / "prompts").names() == ["a", "b", "team/c"]
    assert PromptStore(tmp_path / "missing").names() == []


def test_get_current_and_render(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    store = PromptStore(tmp_path / "prompts")
    prompt = store.get("greet")
    assert prompt.version == content_version(V1.encode())
    assert prompt.render(name="Ada") == (Message.user("Hello Ada"),)


def test_get_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "greet", V1)
    store = PromptStore(tmp_path / "prompts")
    first = store.get("greet")
    assert store.get("greet") is first
    path.write_text(V2 + "more\n")
    second = store.get("greet")
    assert second is not first
    assert second.description == "second"


def test_unknown_prompt_and_bad_names(tmp_path: Path) -> None:
    store = PromptStore(tmp_path / "prompts")
    with pytest.raises(ConfigError, match="no prompt named 'nope'"):
        store.get("nope")
    for bad in ("../secret", "a/../../b", "/etc/passwd", ""):
        with pytest.raises(ConfigError, match="not a prompt name"):
            store.get(bad)


def test_split_ref() -> None:
    assert split_ref("greet") == ("greet", None)
    assert split_ref("greet@abc123") == ("greet", "abc123")
    assert split_ref("greet@production") == ("greet", "label:production")
    assert split_ref("greet@label:staging") == ("greet", "label:staging")
    with pytest.raises(ConfigError):
        split_ref("greet@")


def test_outside_git_there_is_no_commit_or_history(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    store = PromptStore(tmp_path / "prompts")
    assert store.get("greet").git_commit is None
    assert store.history("greet") == []
    with pytest.raises(ConfigError, match="no version 'abcdef'"):
        store.get("greet", "abcdef")


def test_missing_git_executable_means_no_history(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    store = PromptStore(tmp_path / "prompts", history=GitHistory(git="no-such-git-binary"))
    assert store.get("greet").git_commit is None


def test_git_commit_of_committed_file(repo: Path) -> None:
    store = PromptStore(repo / "prompts")
    head = git(repo, "rev-parse", "--short", "HEAD")
    prompt = store.get("greet")
    assert prompt.git_commit == head
    assert git(repo, "log", "-1", "--format=%h", "--", "prompts/greet.md") == head


def test_uncommitted_edit_has_no_commit(repo: Path) -> None:
    write(repo, "greet", V3 + "edited\n")
    assert PromptStore(repo / "prompts").get("greet").git_commit is None


def test_commit_is_the_last_commit_touching_the_file(repo: Path) -> None:
    touched = git(repo, "rev-parse", "--short", "HEAD")
    write(repo, "other", "x")
    commit(repo, "unrelated")
    assert PromptStore(repo / "prompts").get("greet").git_commit == touched


def test_history_lists_every_committed_version(repo: Path) -> None:
    versions = [version for version, _ in PromptStore(repo / "prompts").history("greet")]
    assert versions == [content_version(t.encode()) for t in (V3, V2, V1)]


def test_get_old_version_by_content_hash_from_git(repo: Path) -> None:
    store = PromptStore(repo / "prompts")
    old = store.get("greet", content_version(V1.encode())[:8])
    assert old.text == V1
    assert old.version == content_version(V1.encode())
    assert old.render(name="Ada") == (Message.user("Hello Ada"),)
    assert old.git_commit == git(repo, "rev-parse", "--short", "HEAD~2")
    assert old.source.endswith(f"greet.md@{old.version}")
    # Looked up once, then served from the cache.
    assert store.get("greet", old.version) is old


def test_get_old_version_by_commit(repo: Path) -> None:
    middle = git(repo, "rev-parse", "HEAD~1")
    assert PromptStore(repo / "prompts").get("greet", middle[:10]).text == V2


def test_old_version_of_a_deleted_file(repo: Path) -> None:
    version = content_version(V3.encode())
    (repo / "prompts" / "greet.md").unlink()
    commit(repo, "delete")
    assert PromptStore(repo / "prompts").get("greet", version).text == V3


def test_error_in_old_version_names_the_version(repo: Path) -> None:
    broken = "---\ndescription: d\n---\n{{ name }\n"
    write(repo, "greet", broken)
    commit(repo, "broken")
    write(repo, "greet", V1)
    commit(repo, "fixed")
    with pytest.raises(ConfigError) as caught:
        PromptStore(repo / "prompts").get("greet", content_version(broken.encode()))
    assert caught.value.line == 4
    assert "greet.md@" in str(caught.value)


def test_label_writes_the_lock_and_resolve_runs_it(repo: Path) -> None:
    store = PromptStore(repo / "prompts")
    current = store.label("greet", "production")
    assert json.loads((repo / "prompts" / "prompts.lock").read_text()) == {
        "greet": {"production": current.version}}
    assert store.resolve("greet", "production") is current
    assert store.get("greet", "label:production") is current


def test_production_runs_the_labelled_version_not_the_current_file(repo: Path) -> None:
    store = PromptStore(repo / "prompts")
    v1 = content_version(V1.encode())
    store.label("greet", "production", v1[:6])
    store.label("greet", "staging")
    assert store.labels()["greet"] == {"production": v1,
                                       "staging": content_version(V3.encode())}
    assert store.resolve("greet", "production").text == V1
    assert store.resolve("greet", "staging").text == V3
    assert store.resolve("greet").text == V3  # development runs the current file
    assert store.resolve("greet", "development").text == V3


def test_missing_label_names_prompt_and_lock_file(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    write(tmp_path, "other", V2)
    store = PromptStore(tmp_path / "prompts")
    with pytest.raises(ConfigError) as caught:
        store.resolve("greet", "production")
    assert caught.value.source == str(tmp_path / "prompts" / "prompts.lock")
    assert "'greet'" in str(caught.value)
    assert "production" in str(caught.value)

    store.label("other", "staging")
    store.label("greet", "staging")
    with pytest.raises(ConfigError) as caught:
        store.resolve("greet", "production")
    lock_lines = (tmp_path / "prompts" / "prompts.lock").read_text().splitlines()
    assert caught.value.line is not None
    assert '"greet"' in lock_lines[caught.value.line - 1]
    assert f"prompts.lock:{caught.value.line}" in str(caught.value)


def test_label_pinning_an_unavailable_version(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    (tmp_path / "prompts" / "prompts.lock").write_text(
        json.dumps({"greet": {"production": "0123456789ab"}}))
    with pytest.raises(ConfigError, match="neither the current file nor in its git history"):
        PromptStore(tmp_path / "prompts").resolve("greet", "production")


def test_label_unknown_version_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    store = PromptStore(tmp_path / "prompts")
    with pytest.raises(ConfigError):
        store.label("greet", "production", "fedcba98")
    assert not (tmp_path / "prompts" / "prompts.lock").exists()


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "invalid JSON"),
    ('["a"]', "must map prompt names"),
    ('{"greet": "abc"}', "must map labels"),
    ('{"greet": {"Prod uction": "abcdef"}}', "not a label name"),
    ('{"greet": {"production": "not-hex"}}', "not a version hash"),
])
def test_bad_lock_file(tmp_path: Path, text: str, match: str) -> None:
    write(tmp_path, "greet", V1)
    (tmp_path / "prompts" / "prompts.lock").write_text(text)
    with pytest.raises(ConfigError, match=match) as caught:
        PromptStore(tmp_path / "prompts").resolve("greet", "production")
    assert "prompts.lock" in str(caught.value)


def test_bad_environment_name(tmp_path: Path) -> None:
    write(tmp_path, "greet", V1)
    with pytest.raises(ConfigError, match="not a label name"):
        PromptStore(tmp_path / "prompts").resolve("greet", "Prod!")


async def test_aresolve_runs_the_labelled_version(repo: Path) -> None:
    store = PromptStore(repo / "prompts")
    store.label("greet", "production", content_version(V2.encode()))
    assert (await store.aresolve("greet", "production")).text == V2
    assert (await store.aresolve("greet")).text == V3
