"""One request in flight on a libcurl easy handle: what libcurl's callbacks collect for it.

A handle's callbacks are set once per handle (see ``handles``) and act for the transfer it
carries through its ``Slot``; the ``Transfer`` keeps the body (capped), the last response's
``Retry-After`` and the guard's refusal, and settles the sender's future when libcurl is done.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pycurl

from .errors import DestinationRefused, ResponseTooLarge, error_from_curl
from .guard import DestinationGuard
from .transport import CurlResponse

__all__ = ["Slot", "Transfer"]


class Transfer:
    """One request in flight: its future, the body collected so far (capped), and the
    guard's refusal when it refused an address."""

    __slots__ = (
        "chunks",
        "future",
        "guard",
        "max_body_bytes",
        "received",
        "refused",
        "retry_after",
        "too_large",
    )

    def __init__(
        self,
        future: asyncio.Future[CurlResponse],
        max_body_bytes: int,
        guard: DestinationGuard | None = None,
    ) -> None:
        self.future = future
        self.max_body_bytes = max_body_bytes
        self.guard = guard
        self.chunks: list[bytes] = []
        self.received = 0
        self.too_large = False
        self.refused: str | None = None
        self.retry_after: str | None = None

    def open_socket(self, _purpose: int, address: Any) -> socket.socket | int:
        """OPENSOCKETFUNCTION: a socket for an allowed address, SOCKET_BAD for a refused one
        (libcurl then tries the next address, or fails with CURLE_COULDNT_CONNECT)."""
        assert self.guard is not None
        if address.family in (socket.AF_INET, socket.AF_INET6):
            refusal = self.guard.refusal(address.addr[0])
        else:
            refusal = f"destination family {address.family} refused: only IP is allowed"
        if refusal is not None:
            self.refused = refusal
            bad: int = pycurl.SOCKET_BAD
            return bad
        sock = socket.socket(address.family, address.socktype, address.protocol)
        # pycurl hands libcurl a dup of this descriptor once we return: close ours after.
        self.future.get_loop().call_soon(sock.close)
        return sock

    def header(self, line: bytes) -> None:
        """HEADERFUNCTION: keep the last response's Retry-After (a redirect starts anew)."""
        if line[:5] == b"HTTP/":
            self.retry_after = None
        elif line[:12].lower() == b"retry-after:":
            self.retry_after = line[12:].decode("latin-1").strip()

    def write(self, chunk: bytes) -> int | None:
        """WRITEFUNCTION: keep the chunk, or abort the transfer once past the cap."""
        if self.received + len(chunk) > self.max_body_bytes:
            self.too_large = True
            return 0  # a short count makes libcurl stop with CURLE_WRITE_ERROR
        self.received += len(chunk)
        self.chunks.append(chunk)
        return None

    def settle(self, curl: pycurl.Curl, code: int, message: str) -> None:
        """Give the sender the response ``curl`` ended with, or the error (libcurl's ``code``
        and ``message``); nothing when the sender already left."""
        future = self.future
        if future.done():
            return
        if self.too_large or code == pycurl.E_FILESIZE_EXCEEDED:
            cap = self.max_body_bytes
            status = curl.getinfo(pycurl.RESPONSE_CODE)
            future.set_exception(ResponseTooLarge(f"Response body exceeds {cap} bytes", status))
        elif code == pycurl.E_COULDNT_CONNECT and self.refused is not None:
            future.set_exception(DestinationRefused(self.refused))
        elif code:
            future.set_exception(error_from_curl(code, message))
        else:
            future.set_result(
                CurlResponse(
                    status_code=curl.getinfo(pycurl.RESPONSE_CODE),
                    body=b"".join(self.chunks),
                    total_time_ms=curl.getinfo(pycurl.TOTAL_TIME_T) / 1000,
                    effective_url=curl.getinfo(pycurl.EFFECTIVE_URL),
                    retry_after=self.retry_after,
                )
            )


class Slot:
    """A handle's callbacks, set once: they act for the transfer it carries (None when idle,
    so an idle handle keeps no response alive)."""

    __slots__ = ("transfer",)

    def __init__(self) -> None:
        self.transfer: Transfer | None = None

    def write(self, chunk: bytes) -> int | None:
        assert self.transfer is not None
        return self.transfer.write(chunk)

    def header(self, line: bytes) -> None:
        assert self.transfer is not None
        self.transfer.header(line)

    def open_socket(self, purpose: int, address: Any) -> socket.socket | int:
        assert self.transfer is not None
        return self.transfer.open_socket(purpose, address)
