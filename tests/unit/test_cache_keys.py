"""The normalised request key and the semantic guard."""

from __future__ import annotations

from buttress.cache.guard import compatible, signature
from buttress.cache.keys import request_key, semantic_scope
from buttress.runtime.result import Call, Target
from buttress.types import CallRequest, Message, ResponseFormat, Tool


def call(text: str = "hello", *, feature: str = "f", version: str | None = "v1",
         targets: tuple[str, ...] = ("m1",), **request: object) -> Call:
    req = CallRequest(model="", messages=(Message.system("be brief"), Message.user(text)),
                      **request)  # type: ignore[arg-type]
    return Call(request=req, targets=tuple(Target(provider="p", model=t) for t in targets),
                call_id="id-" + text, trace_id="t", feature=feature, prompt_version=version)


def test_the_key_ignores_ids_tags_and_cache_mode_but_not_what_changes_the_answer() -> None:
    base = request_key(call())
    same = call().model_copy(update={"call_id": "other", "trace_id": "x", "tags": ("a",),
                                     "cache": "refresh", "user_id": "u"})
    assert request_key(same) == base
    assert len(base) == 64
    different = [
        call("hello!"), call(feature="g"), call(version="v2"), call(targets=("m2",)),
        call(targets=("m1", "m2")), call(temperature=0.5), call(max_tokens=10),
        call(response_format=ResponseFormat(type="json_schema", json_schema={"type": "object"})),
        call(tools=(Tool(name="lookup"),)), call(extra={"reasoning": "high"}),
    ]
    keys = {request_key(c) for c in different}
    assert base not in keys
    assert len(keys) == len(different)


def test_the_key_does_not_depend_on_dict_order() -> None:
    a = call(extra={"a": 1, "b": {"x": 1, "y": 2}})
    b = call(extra={"b": {"y": 2, "x": 1}, "a": 1})
    assert request_key(a) == request_key(b)


def test_the_semantic_scope_varies_with_everything_but_the_last_user_message() -> None:
    scope, text = semantic_scope(call("can I get a refund")) or ("", "")
    assert text == "can I get a refund"
    assert semantic_scope(call("how do I get my money back"))[0] == scope  # type: ignore[index]
    for other in (call(feature="g"), call(version="v2"), call(temperature=0.1),
                  call(targets=("m2",))):
        assert semantic_scope(other)[0] != scope  # type: ignore[index]


def test_no_user_text_means_no_semantic_scope() -> None:
    c = call().model_copy(update={"request": CallRequest(model="", messages=(
        Message.system("x"), Message.user(""),))})
    assert semantic_scope(c) is None


def test_negations_must_match() -> None:
    refund = signature("can I get a refund")
    assert not compatible(refund, signature("can I not get a refund"))
    assert not compatible(refund, signature("why can't I get a refund"))
    assert not compatible(refund, signature("I never got a refund"))
    assert compatible(refund, signature("is it possible to get a refund"))
    assert compatible(signature("I don't want it"), signature("I do not want it"))


def test_numbers_must_match_in_digits_or_words() -> None:
    assert not compatible(signature("where is order 123"), signature("where is order 456"))
    assert not compatible(signature("a refund after 30 days"), signature("a refund after 60 days"))
    assert compatible(signature("return within 30 days"), signature("return in thirty days"))
    assert compatible(signature("order 007"), signature("order 7"))
    assert not compatible(signature("two tickets"), signature("three tickets"))
    assert not compatible(signature("my order"), signature("my 2 orders"))
