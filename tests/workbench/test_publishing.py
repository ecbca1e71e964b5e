"""fastiot.publishing, headless: drafts to bytes, headers, the bounded history and the templates file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgpack
import pytest

from fastiot.exceptions import FormError, TemplateFileError
from fastiot.publishing import (
    DEFAULT_TEMPLATES_FILE,
    Draft,
    MessageHistory,
    SentMessage,
    Template,
    TemplateStore,
    format_headers,
    parse_headers,
    subject_problem,
)


def test_each_encoding_makes_the_bytes_it_says() -> None:
    assert Draft("a", '{"on": true, "v": [1, 2]}', "json").encode() == b'{"on": true, "v": [1, 2]}'
    assert Draft("a", "  21.5 ", "text").encode() == b"  21.5 "
    assert Draft("a", "grüß", "text").encode() == "grüß".encode()
    packed = Draft("a", '{"on": true}', "msgpack").encode()
    assert msgpack.unpackb(packed) == {"on": True}
    assert Draft("a", "01 ff 7A", "hex").encode() == b"\x01\xff\x7a"
    assert Draft("a", "", "json").encode() == b"null"


def test_a_payload_that_does_not_fit_says_how_to_write_it() -> None:
    with pytest.raises(FormError) as info:
        Draft("a", "{on: true}", "json").encode()
    assert (
        "not valid JSON" in info.value.errors["payload"] and "double quotes" in info.value.errors["payload"]
    )
    with pytest.raises(FormError, match="pairs of hex digits"):
        Draft("a", "0g", "hex").encode()
    with pytest.raises(FormError, match="one of json"):
        Draft("a", "1", "yaml").encode()


def test_headers_are_read_from_lines_or_json_and_checked() -> None:
    assert parse_headers("") == {}
    assert parse_headers("Trace-Id: 42\n\norigin:  notebook ") == {"Trace-Id": "42", "origin": "notebook"}
    assert parse_headers('{"a": "1", "b": 2}') == {"a": "1", "b": "2"}
    assert parse_headers(format_headers({"x": "a: b"})) == {"x": "a: b"}
    for bad, hint in [
        ("no colon", "has no ':'"),
        ("bad name: 1", "not a header name"),
        ("{not json", "not a JSON object"),
        ("[1]", "JSON object"),
    ]:
        with pytest.raises(FormError) as info:
            parse_headers(bad)
        assert hint in info.value.errors["headers"]


def test_subject_problems() -> None:
    assert subject_problem("v1.thing.press_1") is None
    assert "wildcard" in (subject_problem("v1.*.x") or "")
    assert "empty token" in (subject_problem("v1..x") or "")
    assert "give the subject" in (subject_problem("") or "")


def test_history_is_bounded_and_counts_what_it_dropped() -> None:
    history = MessageHistory(max_entries=3)
    for i in range(5):
        history.add(SentMessage(dt.datetime.now(dt.timezone.utc), "publish", f"s{i}", b"x" * i, {}))
    assert [entry.subject for entry in history] == ["s4", "s3", "s2"]
    assert history.dropped == 2 and len(history) == 3
    assert "publish s4 (4 B)" in history[0].describe()
    with pytest.raises(ValueError, match="at least 1"):
        MessageHistory(0)


def test_templates_live_in_a_json_file_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = TemplateStore()
    assert store.path == tmp_path / DEFAULT_TEMPLATES_FILE and store.load() == {}
    heat = Template.from_draft("heat", Draft("v1.setpoint", '{"target": 80}', "json", {"a": "1"}, "request"))
    store.save(heat)
    store.save(Template("cool", "v1.setpoint", payload='{"target": 5}'))
    store.save(Template("heat", "v1.setpoint", payload='{"target": 90}'))  # replaces by name
    loaded = TemplateStore().load()
    assert sorted(loaded) == ["cool", "heat"] and loaded["heat"].payload == '{"target": 90}'
    assert json.loads((tmp_path / DEFAULT_TEMPLATES_FILE).read_text())["templates"][0]["name"] == "heat"
    assert heat.draft() == Draft("v1.setpoint", '{"target": 80}', "json", {"a": "1"}, "request")
    assert store.delete("cool") and not store.delete("cool")
    assert list(store.load()) == ["heat"]
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_TEMPLATES_FILE], "no temporary files left"


def test_a_bad_templates_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    store = TemplateStore(path)
    for content, problem in [
        ("{not json", "is not JSON"),
        ('{"something": "else"}', "is not a fastiot templates file"),
        ('{"templates": [{"subject": "x"}]}', "without a name"),
        ('{"templates": [{"name": "x", "subject": "x", "encoding": "yaml"}]}', "unknown mode or encoding"),
        ('{"templates": [{"name": "x"}]}', "unreadable entry"),
    ]:
        path.write_text(content)
        with pytest.raises(TemplateFileError) as info:
            store.load()
        assert problem in str(info.value) and str(path) in str(info.value)
        assert "fix it, or rename it" in str(info.value) and info.value.path == str(path)
    assert path.read_text() == '{"templates": [{"name": "x"}]}', "a bad file is never overwritten"
    with pytest.raises(TemplateFileError):
        store.save(Template("y", "v1.y"))


def test_the_templates_file_is_bounded(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "t.json", max_templates=2, max_bytes=2_000)
    store.save(Template("a", "v1.a"))
    store.save(Template("b", "v1.b"))
    store.save(Template("b", "v1.b2"))  # replacing is fine at the limit
    with pytest.raises(TemplateFileError, match="holds 2 templates already"):
        store.save(Template("c", "v1.c"))
    with pytest.raises(TemplateFileError, match="more than 2,000 bytes"):
        store.save(Template("b", "v1.b", payload="x" * 3_000))
    (tmp_path / "t.json").write_text(" " * 2_001)
    with pytest.raises(TemplateFileError, match="2,001 bytes"):
        store.load()
    with pytest.raises(ValueError, match="name"):
        store.save(Template(" ", "v1.a"))
