"""Redaction: detectors find what they should (and not what they should not); policies apply."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.ledger import AttemptRecord, CallRecord, FeedbackRecord, Validation
from buttress.ledger.detectors import Detector, Span, luhn_valid
from buttress.ledger.redaction import Redactor
from buttress.ledger.rows import call_row

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
ANTHROPIC_KEY = "sk-ant-api03-" + "x" * 40
GOOGLE_KEY = "AIza" + "S" * 35
GITHUB_TOKEN = "ghp_" + "a" * 36
AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"


@pytest.mark.parametrize("secret", [OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY, GITHUB_TOKEN, AWS_KEY])
def test_api_keys_are_scrubbed_in_every_mode(secret: str) -> None:
    text = f"use {secret} please"
    assert Redactor().scrub(text, personal=False) == "use [REDACTED:secret] please"


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [REDACTED:secret]"),
    ("api_key=hunter2hunter2 rest", "api_key=[REDACTED:secret] rest"),
    ('{"password": "correct-horse"}', '{"password": "[REDACTED:secret]"}'),
    ("SECRET_KEY: 'abcdef123456'", "SECRET_KEY: '[REDACTED:secret]'"),
])
def test_bearer_tokens_and_key_value_secrets(text: str, expected: str) -> None:
    assert Redactor().scrub(text, personal=False) == expected


def test_private_key_blocks_are_scrubbed() -> None:
    text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----\nend"
    assert Redactor().scrub(text) == "key:\n[REDACTED:secret]\nend"


def test_ordinary_words_are_not_secrets() -> None:
    text = "ask the desk; token budget is low; the password policy changed"
    assert Redactor().scrub(text) == text


@pytest.mark.parametrize(("text", "label"), [
    ("mail jane.doe+x@example.co.uk now", "email"),
    ("call (415) 555-2671 now", "phone"),
    ("call 415-555-2671 now", "phone"),
    ("call +44 20 7946 0958 now", "phone"),
    ("card 4111 1111 1111 1111 now", "card"),
    ("card 4111-1111-1111-1111 now", "card"),
    ("card 378282246310005 now", "card"),
    ("ssn 123-45-6789 now", "ssn"),
])
def test_personal_data_is_found(text: str, label: str) -> None:
    out = Redactor().scrub(text)
    assert out.split()[0] + " [REDACTED:" + label + "] now" == out


@pytest.mark.parametrize("text", [
    "order 4111111111111112 shipped",  # 16 digits failing Luhn
    "order 1234 5678 9012 3456 shipped",  # fails Luhn too
    "ssn-like 000-12-3456 and 666-12-3456",  # not valid SSNs
    "version 1.2.3, 42 items, year 2024",
])
def test_near_misses_are_left_alone(text: str) -> None:
    assert Redactor().scrub(text) == text


def test_a_card_followed_by_more_numbers_is_still_found() -> None:
    assert Redactor().scrub("pay 4111111111111111 12 25 ok") == "pay [REDACTED:card] 12 25 ok"
    assert Redactor().scrub("n 12345678901234567890 ok") == "n 12345678901234567890 ok"


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111")


def test_personal_data_is_kept_when_only_secrets_are_scrubbed() -> None:
    text = f"jane@example.com {OPENAI_KEY}"
    assert Redactor().scrub(text, personal=False) == "jane@example.com [REDACTED:secret]"


def test_literal_secrets_are_scrubbed_wherever_they_appear() -> None:
    odd = "not-a-pattern-9f8e7d"
    r = Redactor(secrets=[odd, ""])
    assert r.scrub(f"x{odd}y", personal=False) == "x[REDACTED:secret]y"


def test_overlapping_spans_merge() -> None:
    r = Redactor(detectors=[], secrets=["abcdef", "defghi"])
    assert r.scrub("..abcdefghi..") == "..[REDACTED:secret]..", "overlap merged into one span"


class Shouty:
    """A custom detector: any word in capitals."""

    label = "shout"

    def find(self, text: str) -> Iterator[Span]:
        pos = 0
        for word in text.split(" "):
            if word.isupper():
                yield pos, pos + len(word)
            pos += len(word) + 1


def test_detectors_are_pluggable() -> None:
    shouty: Detector = Shouty()
    assert isinstance(shouty, Detector)
    r = Redactor(detectors=[shouty])
    assert r.scrub("hello WORLD jane@example.com") == "hello [REDACTED:shout] jane@example.com"


def _call(feature: str = "f") -> CallRecord:
    return CallRecord(
        call_id="c", feature=feature, created_at=0.0,
        request={"model": "m", "extra": {"auth": f"Bearer {OPENAI_KEY}"},
                 "messages": [{"role": "user", "content": "I am jane@example.com"},
                              {"role": "assistant", "content": None,
                               "tool_calls": [{"id": "t1", "name": "lookup",
                                               "arguments": '{"email": "jane@example.com"}'}]}]},
        output_text="write to jane@example.com",
        output_value={"to": ["jane@example.com"], "n": 3},
        error_message=f"upstream said {OPENAI_KEY} invalid for jane@example.com",
        validation=Validation(outcome="failed", reasons=("jane@example.com is not allowed",)),
    )


def test_redact_policy_scrubs_content_parameters_and_errors() -> None:
    out = Redactor().call(_call())
    assert "jane@example.com" not in out.model_dump_json()
    assert OPENAI_KEY not in out.model_dump_json()
    assert out.request["messages"][0] == {"role": "user", "content": "I am [REDACTED:email]"}
    assert out.output_value == {"to": ["[REDACTED:email]"], "n": 3}
    assert out.request["model"] == "m"


def test_store_policy_keeps_content_but_never_secrets() -> None:
    out = Redactor(features={"f": "store"}).call(_call())
    assert out.output_text == "write to jane@example.com"
    assert out.request["extra"] == {"auth": "Bearer [REDACTED:secret]"}
    assert out.error_message == "upstream said [REDACTED:secret] invalid for jane@example.com"


def test_hash_policy_replaces_content_by_its_digest() -> None:
    out = Redactor(default="store", features={"f": "hash"}).call(_call())
    digest = "sha256:" + hashlib.sha256(b"write to jane@example.com").hexdigest()
    assert out.output_text == digest
    assert out.request["messages"][0]["content"] == (
        "sha256:" + hashlib.sha256(b"I am jane@example.com").hexdigest())
    assert isinstance(out.output_value, str)
    assert out.output_value.startswith("sha256:")
    assert "jane@example.com" not in out.model_dump_json()


def test_drop_policy_keeps_no_content() -> None:
    out = Redactor(features={"f": "drop"}).call(_call())
    assert out.output_text is None
    assert out.output_value is None
    assert out.request["messages"][0] == {"role": "user", "content": None}
    assert out.request["model"] == "m"


def test_policy_is_chosen_per_feature() -> None:
    r = Redactor(default="drop", features={"keep": "store"})
    assert r.call(_call("keep")).output_text == "write to jane@example.com"
    assert r.call(_call("other")).output_text is None


def test_attempt_errors_and_feedback_comments_are_scrubbed() -> None:
    r = Redactor()
    a = AttemptRecord(call_id="c", index=0, started_at=0, error_message=f"key {OPENAI_KEY}")
    assert r.attempt(a).error_message == "key [REDACTED:secret]"
    f = FeedbackRecord(feedback_id="x", call_id="c", signal="edited", created_at=0,
                       comment="send to jane@example.com")
    assert r.feedback(f).comment == "send to [REDACTED:email]"


@pytest.mark.parametrize("mode", ["store", "redact", "hash", "drop"])
def test_the_names_a_call_goes_by_are_scrubbed_of_secrets_in_every_mode(mode: str) -> None:
    # what callers name a call by, such as a key pasted as a user id or a model by mistake
    record = CallRecord(call_id="c", feature="f", created_at=0.0, request={"model": "m"},
                        user_id=f"u {OPENAI_KEY}", session_id=f"s {GITHUB_TOKEN}",
                        parent_id=f"p {AWS_KEY}", model_requested=OPENAI_KEY,
                        model_served=f"m {ANTHROPIC_KEY}", tags=("team:a", f"k:{GOOGLE_KEY}"))
    out = Redactor(features={"f": mode}).call(record)  # type: ignore[dict-item]
    assert (out.user_id, out.session_id, out.parent_id, out.model_requested,
            out.model_served, out.tags) == (
        "u [REDACTED:secret]", "s [REDACTED:secret]", "p [REDACTED:secret]",
        "[REDACTED:secret]", "m [REDACTED:secret]", ("team:a", "k:[REDACTED:secret]"))


def test_names_keep_their_personal_data() -> None:
    # an email address used as a user id is how the app tells its users apart
    record = CallRecord(call_id="c", created_at=0.0, request={"model": "m"},
                        output_text="to jane@example.com", user_id="jane@example.com",
                        session_id="415-555-2671", tags=("jane@example.com",))
    out = Redactor().call(record)
    assert out.output_text == "to [REDACTED:email]"
    assert (out.user_id, out.session_id, out.tags) == (
        "jane@example.com", "415-555-2671", ("jane@example.com",))
    assert Redactor().keeps("", {"model": "m"}, names=("jane@example.com",))
    assert not Redactor().keeps("", {"model": "m"}, names=(OPENAI_KEY,))
    assert not Redactor(secrets=["lit-3e2"]).keeps("", {"model": "m"}, names=("a", "lit-3e2"))


@pytest.mark.parametrize("mode", ["store", "redact", "hash", "drop"])
def test_object_keys_are_scrubbed_of_secrets_in_every_mode(mode: str) -> None:
    record = CallRecord(call_id="c", feature="f", created_at=0.0, request={
        "model": "m", "extra": {OPENAI_KEY: "v", "n": [{f"Bearer {GITHUB_TOKEN}": 1}]}},
        output_value={OPENAI_KEY: {"ok": 1}})
    red = Redactor(features={"f": mode})  # type: ignore[dict-item]
    assert not red.keeps("f", record.request)
    out = red.call(record)
    assert out.request["extra"] == {"[REDACTED:secret]": "v",
                                    "n": [{"Bearer [REDACTED:secret]": 1}]}
    assert OPENAI_KEY not in out.model_dump_json()
    if mode in ("store", "redact"):
        assert out.output_value == {"[REDACTED:secret]": {"ok": 1}}


def test_unknown_mode_is_a_config_error_naming_the_feature() -> None:
    with pytest.raises(ConfigError, match="triage: unknown redaction mode 'shred'"):
        Redactor(features={"triage": "shred"})  # type: ignore[dict-item]


@pytest.mark.parametrize("text", [
    "AUTHORIZATION: BEARER abc.def-ghi_jkl",  # triggers are matched whatever the case
    "Mail Ada.Lovelace@Example.ORG today",
    "call 415 555 0100",
])
def test_the_trigger_gate_never_hides_a_match(text: str) -> None:
    # The one-regex gate must pass every text a detector would match, in any case.
    redactor = Redactor()
    assert "[REDACTED:" in redactor.scrub(text)
    ungated = Redactor()
    ungated._gate_all = None  # every detector looks at every text, as before the gate
    assert redactor.scrub(text) == ungated.scrub(text)


def test_text_without_triggers_still_meets_literal_secrets() -> None:
    # A literal secret has no trigger: it is searched for even when the gate finds nothing.
    redactor = Redactor(secrets=["zzqq-plain-value"])
    assert redactor.scrub("the value zzqq-plain-value leaked") == \
        "the value [REDACTED:secret] leaked"


def test_trusted_records_equal_validated_ones() -> None:
    fields = {"call_id": "c1", "created_at": 1.0, "provider": "p", "tags": ("a",),
              "request": {"model": "m"}, "latency_ms": 3.5}
    trusted = CallRecord.trusted(fields)
    assert trusted == CallRecord.model_validate(fields)
    assert trusted.model_dump() == CallRecord.model_validate(fields).model_dump()
    assert trusted.evolve({"output_text": "x"}).output_text == "x"
    assert trusted.output_text is None  # evolve copies
    with pytest.raises(ValueError, match="not_a_field"):
        CallRecord.trusted({**fields, "not_a_field": 1})
    # an unknown name cannot stand in for a missing required one
    with pytest.raises(ValueError, match="call_id"):
        CallRecord.trusted({k: v for k, v in {**fields, "bogus": 1}.items() if k != "call_id"})


# Pieces that make, split or hide triggers, secrets and personal data, and odd Unicode (a
# Kelvin sign lowercases to "k", "İ" to two characters, Σ by its context, ٣ is a digit).
FRAGMENTS = ("key", "KEY", "ke", "y", "\u212aey", "İ", "ΑΣ", "σ", "\n", " ", "@", "jane",
             "@example.com", "sk-", OPENAI_KEY, "415-555-2671", "4111 1111 1111 1111",
             "123-45-6789", "12", "3", "٣٣٣", "bearer ", "token=", "abcdef123", "hello",
             "PRIVATE KEY", "API_KEY=", "\u212aEY: ", "passw", "é", "zzq-lit", "-value",
             "zzq-lit-value", "\x00", '"')
fragment_texts = st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(content=fragment_texts, param=fragment_texts, output=fragment_texts,
       parsed=fragment_texts, error=st.none() | fragment_texts, reason=fragment_texts,
       mode=st.sampled_from(["redact", "store"]))
def test_the_whole_record_gate_changes_no_stored_byte(content: str, param: str, output: str,
                                                      parsed: str, error: str | None,
                                                      reason: str, mode: str) -> None:
    # Redactor.call skips scrubbing when one search finds nothing in any text: what it keeps
    # must be what scrubbing field by field keeps.
    redactor = Redactor(default=mode, secrets=["zzq-lit-value"])  # type: ignore[arg-type]
    record = CallRecord(
        call_id="c", created_at=0.0, output_text=output, error_message=error,
        request={"model": "m", "extra": {"note": param},
                 "messages": [{"role": "user", "content": content}]},
        output_value={"to": [parsed, 3]},
        validation=Validation(outcome="failed", reasons=(reason,)))
    assert call_row(redactor.call(record)) == call_row(redactor._scrubbed(record, mode))  # type: ignore[arg-type]


def test_the_whole_record_gate_lets_the_usual_record_through() -> None:
    redactor = Redactor(secrets=["zzq-lit-value"])
    record = CallRecord(call_id="c", created_at=0.0, output_text="Hello there!",
                        request={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert redactor.call(record) is record
    for odd in (Redactor(detectors=[Shouty()]),  # a detector that looks at every text
                Redactor(default="hash"), Redactor(default="drop")):
        assert odd.call(record) is not record
