"""W3C trace context kept from a registration and passed on to every attempt (SPEC §19.2).

A registration's ``traceparent`` header is validated (400 when malformed) and kept in the
task's sealed request under ``STORED``: the server's own key, never an owner's field, so no
schema change and no plain-text trace ids at rest. Each attempt, callbacks included, sends a
child: the same trace id and sampled flag, a new span id. A task registered without one
sends none.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, registrations and attempts are also spans exported
over OTLP/HTTP by the OpenTelemetry SDK (``tasks_server.otel``, the optional extra
``tracing``); a registration then always keeps its span's context, so a new trace starts at
a registration that came without one. Without the extra, setting the endpoint logs one
warning and nothing is exported. When nothing is exported an attempt costs one string.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger(__name__)

HEADER = "traceparent"
STORED = "traceparent"  # the sealed request's key for it

# version-traceid-parentid-flags, lowercase hex; a later version may append "-…" fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")

Attributes = Mapping[str, str | int]


class InvalidTraceparent(ValueError):
    """A ``traceparent`` header that is not a W3C trace context."""


def parse(value: str) -> str:
    """`value` as the version-00 ``traceparent`` a task keeps (W3C Trace Context §3.2)."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        raise InvalidTraceparent("expected 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>")
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        raise InvalidTraceparent(f"version {version} is not valid here")
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        raise InvalidTraceparent("the trace id and the span id may not be all zeros")
    return f"00-{trace_id}-{parent_id}-{flags}"


# Its own generator: the global one's state belongs to whatever else runs in the process.
_SPAN_IDS = random.Random()


def child(traceparent: str) -> str:
    """A child of a kept ``traceparent``: same trace and flags, a new span id."""
    span_id = _SPAN_IDS.getrandbits(64) or 1
    return f"{traceparent[:36]}{span_id:016x}{traceparent[52:]}"


class Span(Protocol):
    """An exported span under way: its context as a ``traceparent``, ended once."""

    @property
    def traceparent(self) -> str: ...

    def end(self, attributes: Attributes, *, error: bool = False) -> None: ...


class Exporter(Protocol):
    def start(self, name: str, parent: str | None, *, client: bool) -> Span: ...

    def shutdown(self) -> None: ...


class Tracing:
    """One app's tracing: kept contexts always, spans when an exporter is set."""

    def __init__(self, exporter: Exporter | None = None) -> None:
        self._exporter = exporter

    @classmethod
    def from_endpoint(cls, endpoint: str | None) -> Tracing:
        """Exporting to `endpoint` (OTLP/HTTP base URL) when given and the SDK is installed."""
        if endpoint is None:
            return cls()
        try:
            from tasks_server.otel import OtlpExporter
        except ImportError as exc:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed "
                "(pip install 'tasks-server[tracing]'): no spans are exported",
                extra={"action": "tracing_unavailable", "error": str(exc)},
            )
            return cls()
        return cls(OtlpExporter(endpoint))

    def registration(self, name: str, incoming: str | None) -> Span | None:
        """The span of a registration, child of `incoming` (or a new trace), when exporting."""
        if self._exporter is None:
            return None
        return self._exporter.start(name, incoming, client=False)

    def attempt(self, kept: str) -> Span | None:
        """The span of an attempt of a task keeping `kept`, when exporting: its context is then
        the ``traceparent`` the attempt sends (else a ``child`` of `kept`)."""
        if self._exporter is None:
            return None
        return self._exporter.start("task.attempt", kept, client=True)

    def shutdown(self) -> None:
        """Export what is queued, then stop (blocking: run it in a thread)."""
        if self._exporter is not None:
            self._exporter.shutdown()
