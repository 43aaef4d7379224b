"""Why an attempt produced no usable response: the executor's own small exception tree.

libcurl reports failures as error numbers plus a text; the rest of the server never sees
those, only these classes (SPEC §3.2 "Outcome"). Each carries the ``status_code`` the
attempt is recorded with and a human ``message`` that becomes the task's ``response``::

    AttemptError            any failed attempt (status_code, message)
    ├── AttemptTimeout      408: the attempt ran over its TIMEOUT_MS (CURLE_OPERATION_TIMEDOUT)
    ├── ResponseTooLarge    422: the body passed the size cap and the download was cut off;
    │                       ``response_status`` is the status the target answered with
    └── TransportError      500: refused, DNS, TLS, proxy, ... with libcurl's error text
        └── DestinationRefused  500: the destination guard (SPEC §10.2) refused every
                                address; final, never retried

An attempt aborted by pause, revoke, delete or shutdown is not an outcome: it raises
``asyncio.CancelledError``. HTTP status codes (4xx/5xx) are responses, never errors here.
"""

from __future__ import annotations

import pycurl


class AttemptError(Exception):
    """An attempt failed before a complete response was received."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AttemptTimeout(AttemptError):
    status_code = 408


class ResponseTooLarge(AttemptError):
    status_code = 422

    def __init__(self, message: str, response_status: int = 0) -> None:
        super().__init__(message)
        self.response_status = response_status

    @property
    def delivered(self) -> bool:
        """The target accepted the request (2xx/3xx): sending it again would repeat it."""
        return 200 <= self.response_status < 400


class TransportError(AttemptError):
    status_code = 500


class DestinationRefused(TransportError):
    """Nothing was sent: the guard refused the address; retrying cannot change that."""


def error_from_curl(code: int, message: str) -> AttemptError:
    """Map a libcurl error number and its error-buffer text to our tree."""
    message = message or f"libcurl error {code}"
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return AttemptTimeout(message)
    if code == pycurl.E_FILESIZE_EXCEEDED:  # MAXFILESIZE refused a declared Content-Length
        return ResponseTooLarge(message)
    return TransportError(message)
