"""Responses passed on (SPEC §17.3): ``{{deps.R.statusCode}}``, ``{{deps.R.body}}`` and
``{{deps.R.json.a.b.0}}`` in a dependent's URL, header values and ``data``, filled at attempt
time from dependency R's last response.

A lookup or nothing: no expression language, no code. A value is percent-encoded in the URL
(where placeholders may stand only in the path and query, never in the scheme or host the
destination guard judged), JSON-encoded inside a JSON ``data`` (a string that is one
placeholder becomes the value itself, a number or an object as well as a string), and text
elsewhere. A value that would break a header's framing, or a path the response does not have,
fails the attempt before anything is sent (`Unfilled`). The stored request keeps its
placeholders; only the copy sent is filled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from tasks_server.models.queues import QueueRegistration

__all__ = ["Dependency", "Unfilled", "fill", "names", "used"]

_NAME = r"[A-Za-z0-9_-]{1,64}"
PLACEHOLDER = re.compile(
    r"\{\{\s*deps\.(" + _NAME + r")\.(statusCode|body|json((?:\.[^.{}\s]+)+))\s*\}\}"
)
_OPENING = re.compile(r"\{\{\s*deps\.")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Unfilled(Exception):
    """A placeholder cannot be filled: the attempt fails and nothing is sent."""


@dataclass(frozen=True, slots=True)
class Dependency:
    """What a placeholder reads of a dependency: its status and last response (None: none
    kept, or the task is gone)."""

    status_code: int | None
    body: bytes | None


def _texts(reg: QueueRegistration) -> Iterator[str]:
    """Every string placeholders may stand in."""
    request = reg.http_request
    yield request.url
    yield from (request.headers or {}).values()
    yield from _data_strings(request.data)


def _data_strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _data_strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _data_strings(getattr(item, "value", item))


def used(reg: QueueRegistration) -> bool:
    return any(_OPENING.search(text) for text in _texts(reg))


def names(reg: QueueRegistration) -> set[str]:
    """The dependency names the registration's placeholders use. ValueError (a 400) for one
    that is malformed, or that stands in the URL's scheme or host."""
    found: set[str] = set()
    for text in _texts(reg):
        for opening in _OPENING.finditer(text):
            match = PLACEHOLDER.match(text, opening.start())
            if match is None:
                end = text.find("}}", opening.start())
                shown = text[opening.start() : end + 2 if end >= 0 else None]
                raise ValueError(
                    f"malformed placeholder {shown!r}: use {{{{deps.NAME.statusCode}}}}, "
                    "{{deps.NAME.body}} or {{deps.NAME.json.path.to.0}}"
                )
            found.add(match.group(1))
    url = urlsplit(reg.http_request.url)
    if _OPENING.search(url.scheme + "://" + url.netloc):
        raise ValueError("placeholders may stand only in the URL's path and query, not its host")
    return found


def fill(reg: QueueRegistration, dependencies: Mapping[str, Dependency]) -> QueueRegistration:
    """A copy of `reg` with every placeholder filled from `dependencies` (by name)."""
    request = reg.http_request
    url = _substitute(request.url, dependencies, lambda v: quote(_text(v), safe=""))
    headers = None
    if request.headers is not None:
        headers = {
            name: _substitute(value, dependencies, _header_text)
            for name, value in request.headers.items()
        }
    data = _fill_data(request.data, dependencies)
    filled = request.model_copy(update={"url": url, "headers": headers, "data": data})
    return reg.model_copy(update={"http_request": filled})


def _fill_data(data: Any, dependencies: Mapping[str, Dependency]) -> Any:
    if isinstance(data, str):
        return _substitute(data, dependencies, _text)
    if isinstance(data, dict):
        return {key: _fill_json(value, dependencies) for key, value in data.items()}
    if isinstance(data, list):
        return [
            item.model_copy(update={"value": _substitute(item.value, dependencies, _text)})
            for item in data
        ]
    return data


def _fill_json(value: Any, dependencies: Mapping[str, Dependency]) -> Any:
    if isinstance(value, dict):
        return {key: _fill_json(item, dependencies) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole is not None:
        return _value(whole, dependencies)
    return _substitute(value, dependencies, _text)


def _substitute(
    text: str, dependencies: Mapping[str, Dependency], encode: Callable[[Any], str]
) -> str:
    if "{{" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        value = _value(match, dependencies)
        try:
            return encode(value)
        except Unfilled as exc:
            raise Unfilled(f"{match.group(0)}: {exc}") from None

    return PLACEHOLDER.sub(one, text)


def _value(match: re.Match[str], dependencies: Mapping[str, Dependency]) -> Any:
    """The value a placeholder stands for."""
    name, field, path = match.group(1), match.group(2), match.group(3)
    dependency = dependencies.get(name)
    if dependency is None or dependency.status_code is None:
        raise Unfilled(f"{match.group(0)}: the dependency {name} is gone")
    if field == "statusCode":
        return dependency.status_code
    if dependency.body is None:
        raise Unfilled(f"{match.group(0)}: no response of {name} was kept")
    if field == "body":
        return dependency.body.decode(errors="replace")
    try:
        value: Any = json.loads(dependency.body)
    except ValueError:
        raise Unfilled(f"{match.group(0)}: the response of {name} is not JSON") from None
    for step in path.split(".")[1:]:
        value = _step(value, step, match.group(0), name)
    return value


def _step(value: Any, step: str, placeholder: str, name: str) -> Any:
    if isinstance(value, dict) and step in value:
        return value[step]
    if isinstance(value, list) and step.isdigit() and int(step) < len(value):
        return value[int(step)]
    raise Unfilled(f"{placeholder}: the response of {name} has no {step!r} there")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _header_text(value: Any) -> str:
    text = _text(value)
    if _CONTROL.search(text):
        raise Unfilled(
            "its value holds a line break or a control character, which a header cannot carry"
        )
    return text
