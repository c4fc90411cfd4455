"""Text events recognised by their bytes: exactly when a full parse would say the same."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from buttress.providers.openai_compat import plain_text
from buttress.providers.text_events import TextEvents


def event(text: Any, **fields: Any) -> bytes:
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None,
                         "finish_reason": None}], **fields}
    return orjson.dumps(body)


def learned(data: bytes) -> TextEvents:
    texts = TextEvents()
    parsed = orjson.loads(data)
    text = plain_text(parsed)
    assert text is not None
    texts.learn(data, parsed, text)
    return texts


@pytest.mark.parametrize("text", ["plain", 'a "quoted" \\ back\\slash\\', "snow ☃ \u2028",
                                  "\n\t\u0000", '"content":"x"', "\\"])
def test_a_text_event_of_the_same_shape_reads_as_its_text(text: str) -> None:
    texts = learned(event("first"))
    assert texts.text(b"data: " + event(text) + b"\n\n") == text
    assert not texts.learning


@pytest.mark.parametrize("other", [
    event("x", usage={"prompt_tokens": 1}),  # another field
    event("x").replace(b'"chatcmpl-1"', b'"chatcmpl-2"'),  # a field that changed
    event("x").replace(b'"finish_reason":null', b'"finish_reason":"stop"'),
    event(None), event(3), event(""), event(["x"]),  # not a text
])
def test_any_other_event_is_left_to_the_full_parse(other: bytes) -> None:
    texts = learned(event("first"))
    assert texts.text(b"data: " + other + b"\n\n") is None


def test_two_events_in_one_arrival_are_left_to_the_full_parse() -> None:
    texts = learned(event("first"))
    both = b"data: " + event("a") + b"\n\ndata: " + event("b") + b"\n\n"
    assert texts.text(both) is None  # between the template's ends: not one JSON string


def test_other_framing_is_left_to_the_full_parse() -> None:
    texts = learned(event("first"))
    assert texts.text(b"data:" + event("a") + b"\n\n") is None
    assert texts.text(b"data: " + event("a") + b"\r\n\r\n") is None
    assert texts.text(b"data: " + event("a")) is None


def test_a_content_key_elsewhere_is_not_taken_for_the_text() -> None:
    # "content": appears first inside the id; the template is the text's place all the same
    data = event("first").replace(b'"chatcmpl-1"', b'"\\"content\\":\\"x\\""')
    texts = learned(data)
    assert texts.text(b"data: " + data.replace(b'"first"', b'"second"') + b"\n\n") == "second"
    assert texts.text(b"data: " + event("second") + b"\n\n") is None  # its id differs


def test_an_event_whose_text_is_not_alone_gives_no_template_and_it_gives_up() -> None:
    texts = TextEvents()
    data = b'{"choices":[{"delta":{"content":"a"}}],"content":"b"}'
    parsed = orjson.loads(data)
    for _ in range(3):
        assert texts.learning
        texts.learn(data, {**parsed, "changed": True}, "a")  # the probe never matches it
    assert not texts.learning  # three tries, then the stream is read the full way
    assert texts.text(b"data: " + data + b"\n\n") is None


# OpenAI pads each event with random characters of random length, after the choices
PADDED_TEXTS = ["plain", 'a "quoted" \\ back\\slash\\', "snow ☃ \u2028", "\\",
                '"},"logprobs":null,"finish_reason":null}],"obfuscation":"x"}',
                '","obfuscation":"', "obfuscation"]


@pytest.mark.parametrize("text", PADDED_TEXTS)
@pytest.mark.parametrize("pad", ["", "q", "Zx0_-9abc", 'a"b\\', "☃"])
def test_a_padded_event_reads_as_its_text_whatever_its_padding(text: str, pad: str) -> None:
    texts = learned(event("first", obfuscation="1aB3"))
    assert texts.text(b"data: " + event(text, obfuscation=pad) + b"\n\n") == text


@pytest.mark.parametrize("other", [
    event("x"),  # no padding
    event("x", obfuscation=3), event("x", obfuscation=None), event("x", obfuscation=["a"]),
    event("x", obfuscation="a").replace(b'"chatcmpl-1"', b'"chatcmpl-2"'),
    event("x", obfuscation="a", usage={"prompt_tokens": 1}),
    event("x", obfuscation="a").replace(b'"finish_reason":null', b'"finish_reason":"stop"'),
    event(None, obfuscation="a"), event("", obfuscation="a"), event(3, obfuscation="a"),
    event("a", obfuscation="b") + b"\n\ndata: " + event("c", obfuscation="d"),
])
def test_a_padded_template_leaves_any_other_event_to_the_full_parse(other: bytes) -> None:
    texts = learned(event("first", obfuscation="1aB3"))
    assert texts.text(b"data: " + other + b"\n\n") is None


def test_padding_elsewhere_than_the_top_level_is_not_a_second_place() -> None:
    nested = event("first").replace(b'"content":"first"',
                                    b'"content":"first","obfuscation":"1aB3"')
    texts = learned(nested)  # the template holds the padding as it is
    assert texts.text(b"data: " + nested.replace(b'"first"', b'"second"') + b"\n\n") == "second"
    other = nested.replace(b'"first"', b'"second"').replace(b'"1aB3"', b'"zz"')
    assert texts.text(b"data: " + other + b"\n\n") is None
