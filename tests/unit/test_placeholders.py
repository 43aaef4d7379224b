"""Placeholders (SPEC §17.3): what they may name, and how each kind of value is filled."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks_server.models.queues import QueueRegistration
from tasks_server.placeholders import Dependency, Unfilled, fill, names, used

A = Dependency(200, b'{"id": 42, "list": [{"v": "a b"}], "obj": {"k": 1}}')


def reg(url: str = "http://127.0.0.1/x", **request: Any) -> QueueRegistration:
    document = {"httpRequest": {"url": url, "method": "POST", **request}}
    return QueueRegistration.model_validate(document, context={"check_future": False})


def test_names_are_read_from_url_headers_and_data() -> None:
    found = reg(
        "http://127.0.0.1/{{deps.a.statusCode}}",
        headers={"X-Id": "{{ deps.b.json.id }}"},
        data={"nested": {"deeper": "{{deps.c.body}}"}},
    )
    assert names(found) == {"a", "b", "c"} and used(found)
    assert not used(reg()) and names(reg()) == set()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"data": "{{deps.a.status}}"}, "malformed placeholder"),
        ({"data": "{{deps.a..json}}"}, "malformed placeholder"),
        ({"url": "http://{{deps.a.body}}@127.0.0.1/"}, "not its host"),
    ],
)
def test_malformed_or_misplaced_placeholders_are_refused(
    request_fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        names(reg(**request_fields))


def test_values_are_encoded_for_where_they_stand() -> None:
    filled = fill(
        reg(
            "http://127.0.0.1/x/{{deps.a.json.list.0.v}}?s={{deps.a.statusCode}}",
            headers={"X-Obj": "{{deps.a.json.obj}}"},
            data={
                "id": "{{deps.a.json.id}}",
                "text": "id={{deps.a.json.id}}",
                "o": "{{deps.a.json.obj}}",
            },
        ),
        {"a": A},
    )
    request = filled.http_request
    assert request.url == "http://127.0.0.1/x/a%20b?s=200"
    assert request.headers == {"X-Obj": '{"k":1}'}
    assert request.data == {"id": 42, "text": "id=42", "o": {"k": 1}}
    text = fill(reg(data="got {{deps.a.body}}"), {"a": Dependency(201, b"plain")})
    assert text.http_request.data == "got plain"
    form = fill(reg(data=[{"name": "n", "value": "{{deps.a.json.id}}"}]), {"a": A})
    assert [(item.name, item.value) for item in form.http_request.data] == [("n", "42")]


@pytest.mark.parametrize(
    ("request_fields", "dependency", "message"),
    [
        ({"data": "{{deps.a.json.missing}}"}, A, "has no 'missing'"),
        ({"data": "{{deps.a.json.list.5}}"}, A, "has no '5'"),
        ({"data": "{{deps.a.json.id}}"}, Dependency(200, b"not json"), "not JSON"),
        ({"data": "{{deps.a.body}}"}, Dependency(200, None), "no response"),
        ({"data": "{{deps.a.statusCode}}"}, Dependency(None, None), "gone"),
        ({"headers": {"X-A": "{{deps.a.body}}"}}, Dependency(200, b"a\r\nB: c"), "line break"),
    ],
)
def test_what_cannot_be_filled_fails_with_its_placeholder(
    request_fields: dict[str, Any], dependency: Dependency, message: str
) -> None:
    with pytest.raises(Unfilled, match=message) as raised:
        fill(reg(**request_fields), {"a": dependency})
    assert "{{deps.a." in str(raised.value)


def test_the_stored_registration_is_left_as_it_was() -> None:
    original = reg(data={"id": "{{deps.a.json.id}}"})
    fill(original, {"a": A})
    assert json.dumps(original.http_request.data) == '{"id": "{{deps.a.json.id}}"}'
