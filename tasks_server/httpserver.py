"""uvicorn's httptools protocol with the limits of SPEC §10.7.

httptools parses fast but buffers a header of any size, accepts any number of headers and
waits forever for slow senders. This subclass refuses a header block over
`HttpLimits.max_header_bytes` or with more than `max_headers` headers (431), closes a
connection whose headers do not arrive within `header_timeout_s` or whose body stalls for
`body_timeout_s` (408), and answers 503 to connections beyond `max_connections`. It keeps the
httptools parser, so registration keeps its throughput (docs/performance.md).

An answer of its own while the app still reads the request body (a stalled body's 408) is
noted in the scope under `ANSWERED`: the app then sees a disconnect, and counts and logs the
request with the status the client got (SPEC §15.5).
"""

from __future__ import annotations

import asyncio
import functools
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ANSWERED = "tasks_server.answered"
"""Scope key: the status this protocol sent while the app waited for the request body."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_connections: int = 1000


class _Refused(Exception):
    """Raised inside a parser callback; httptools turns it into a parser error."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._refusal = 400
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503)
            return
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Headers still incomplete: everything since the request began is header bytes.
        if (
            self._in_headers
            and self._header_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_count = 0
        self._arm(self.limits.header_timeout_s)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = 431
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refusal = 431
            raise _Refused
        self._in_headers = False
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.limits.body_timeout_s)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers = True  # the next request's bytes count from the next chunk on
        self._header_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to any parser error; a refusal of ours answers with its own status."""
        status, self._refusal = self._refusal, 400
        self._refuse(status)

    # One lazy timer per connection: arming a later deadline only moves it, so a request
    # costs no timer of its own; the timer, when it fires early, waits for the remainder.
    # An earlier deadline (a body timeout shorter than the header one) reschedules it.
    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
        elif self.cycle is not None and self.cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer `status` with a short text body and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if not self._in_headers:  # an app is reading this request's body
            cast("dict[str, object]", self.scope)[ANSWERED] = status
        phrase = http.HTTPStatus(status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, phrase, len(phrase), phrase)
        )
        self.transport.close()


def protocol_for(limits: HttpLimits) -> Callable[..., LimitedHttpToolsProtocol]:
    """The protocol factory for uvicorn's `http` option; picklable for cluster workers."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
