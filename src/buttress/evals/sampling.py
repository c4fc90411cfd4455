"""From production to evals: ledger calls turned into dataset cases to label.

A sampled case keeps the call's inputs (the prompt's variables, recovered from the stored
messages when the prompt version is known and its template can be matched; otherwise the
messages as sent), the call's output as a draft ``expected`` and ``needs_label: true``, so a
person confirms or corrects each one before it counts. The case id is the call id, so sampling
the same calls twice never duplicates a case.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from buttress.errors import UsageError
from buttress.evals.dataset import load_dataset
from buttress.ledger import CallRecord
from buttress.ledger.records import FeedbackRecord
from buttress.types import Message

# a sentinel no real text contains, one per variable, to find where each lands in the template
_MARK = "\x00{}\x00"
PromptLookup = Callable[[str, str], Any]  # (name, version) -> Prompt, or raises


def recover_inputs(prompt: Any, messages: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    """The variables that rendered ``messages`` from ``prompt``, or None when the template does
    not match them (conditionals on a variable, edited messages, extra turns)."""
    names = sorted({use.name for use in prompt.variables_used()})
    if not names:
        return None
    try:
        rendered: tuple[Message, ...] = prompt.render({n: _MARK.format(n) for n in names})
    except Exception:  # a template that filters or tests its variables cannot be inverted
        return None
    if len(rendered) != len(messages):
        return None
    found: dict[str, str] = {}
    for template, sent in zip(rendered, messages, strict=True):
        text, content = template.content or "", sent.get("content")
        if template.role != sent.get("role") or not isinstance(content, str):
            return None
        pattern, order = "", list[str]()
        for part in re.split("(\x00[^\x00]*\x00)", text):
            if part.startswith("\x00") and part.endswith("\x00") and len(part) > 1:
                pattern += "(.*?)" if order.count(part) == 0 else "(?:.*?)"
                order.append(part)
            else:
                pattern += re.escape(part)
        match = re.fullmatch(pattern, content, re.DOTALL)
        if match is None:
            return None
        for name, value in zip(dict.fromkeys(order), match.groups(), strict=True):
            key = name.strip("\x00")
            if found.setdefault(key, value) != value:
                return None
    return found if set(found) == set(names) else None


def case_from_call(record: CallRecord, feedback: Sequence[FeedbackRecord],
                   prompts: PromptLookup | None = None) -> dict[str, Any]:
    """A dataset case (as a plain mapping, ready for YAML) for one recorded call."""
    messages = [m for m in record.request.get("messages", []) if isinstance(m, Mapping)]
    inputs = None
    if prompts is not None and record.prompt_name and record.prompt_version:
        try:
            inputs = recover_inputs(prompts(record.prompt_name, record.prompt_version),
                                    messages)
        except Exception:  # the prompt version is gone from history: keep the messages
            inputs = None
    case: dict[str, Any] = {"id": f"call-{record.call_id}"}
    if inputs is not None:
        case["inputs"] = inputs
    else:
        case["messages"] = [{"role": m.get("role"), "content": m.get("content")}
                            for m in messages if m.get("role") != "system"
                            or record.prompt_name is None]
    # a call that ended without an answer has no output to expect (a stream's partial text
    # is what it had delivered, not an answer)
    draft: Any = None if record.status in ("error", "cancelled") else (
        record.output_value if record.output_value is not None else record.output_text)
    if isinstance(draft, str):
        with contextlib.suppress(ValueError):
            draft = json.loads(draft)
    case["expected"] = draft
    signals = sorted({f.signal for f in feedback})
    case["tags"] = ["production", *(f"feedback:{s}" for s in signals)] + \
        (["error"] if record.status != "ok" else [])
    what = [f"sampled from call {record.call_id} ({record.status}"
            + (f", {record.error_kind}" if record.error_kind else "") + ")"]
    what += [f"{f.signal}: {f.comment}" for f in feedback if f.comment]
    if inputs is None and record.prompt_name:
        what.append("inputs not recovered from the prompt; messages as sent (system dropped)")
    case["notes"] = "; ".join(what)
    case["needs_label"] = True
    return case


def write_cases(path: Path, cases: Sequence[Mapping[str, Any]], *, append: bool,
                feature: str) -> int:
    """Write ``cases`` to a new dataset file, or add the new ones to an existing file when
    ``append``; returns how many were written. Never overwrites without ``append``."""
    if path.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{path}: sampled cases are written as YAML (.yaml or .yml)")
    if path.exists() and not append:
        raise UsageError(f"{path} exists; pass --append to add the sampled cases to it")
    if path.exists():
        existing = {c.id for c in load_dataset(path).cases}
        fresh = [c for c in cases if c["id"] not in existing]
        if fresh:
            _append(path, fresh)
        return len(fresh)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Sampled from the ledger: label each case, then drop `needs_label`.\n"
                    + _dump({"feature": feature, "cases": list(cases)}), encoding="utf-8")
    return len(cases)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _append(path: Path, cases: Sequence[Mapping[str, Any]]) -> None:
    """Add cases after the file's last case, keeping its comments and layout; a file whose case
    list is not at its end is rewritten instead."""
    text = path.read_text(encoding="utf-8")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    seq = node
    if isinstance(node, yaml.MappingNode):
        seq = next((v for k, v in node.value if k.value == "cases"), None)
    tail = text[seq.end_mark.index:] if isinstance(seq, yaml.SequenceNode) else "x"
    if isinstance(seq, yaml.SequenceNode) and seq.value and all(
            not line.strip() or line.lstrip().startswith("#") for line in tail.splitlines()):
        indent = " " * seq.start_mark.column
        block = "".join(indent + line + "\n" for line in _dump(list(cases)).splitlines())
        head = text[:seq.end_mark.index]
        updated = head + ("" if head.endswith("\n") else "\n") + block + tail.lstrip("\n")
    else:
        data = yaml.safe_load(text)
        (data["cases"] if isinstance(data, dict) else data).extend(cases)
        updated = _dump(data)
    path.write_text(updated, encoding="utf-8")
    try:
        load_dataset(path)
    except Exception:
        path.write_text(text, encoding="utf-8")  # never leave a file we broke
        raise
