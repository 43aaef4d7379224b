"""libcurl on the asyncio loop: ``CurlTransport`` sends each request on an easy handle.

Three parts, one module each: ``multi.MultiDriver`` runs one ``pycurl.CurlMulti`` on the
loop (sockets, timer, finished handles), ``handles.Handles`` hands out easy handles and keeps
them per owner for reuse, and ``transfer.Transfer`` collects one response and settles its
sender's future. ``CurlTransport`` ties them together and keeps the transfers in flight.

The destination guard (SPEC §10.2) sits in ``OPENSOCKETFUNCTION``, set on every handle
when it is made and after every ``reset()`` (which clears callbacks): each address libcurl
is about to connect to, for the target, every redirect hop and the proxy, whatever name,
``resolve`` entry or literal form led there, is checked, and a refused one gets no socket at
all. libcurl's own DNS-over-HTTPS transfers are internal handles that do not inherit the
callback, so the DoH server's host is resolved and checked here before the transfer starts,
and the addresses checked are pinned with a ``RESOLVE`` entry: the DoH transfers look the host
up in the transfer's share, which holds that entry, so libcurl never resolves it again and a
DNS answer that changes in between (rebinding) cannot take it anywhere unchecked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pycurl

from .errors import DestinationRefused, error_from_curl
from .guard import DestinationGuard
from .handles import Handles
from .multi import MultiDriver
from .transfer import Transfer
from .transport import CurlResponse

__all__ = ["CurlTransport"]


class CurlTransport:
    """``Transport`` over libcurl's multi-socket interface, bound to the loop of first use."""

    def __init__(
        self,
        *,
        max_idle: int = 1_000,
        max_connects: int | None = None,
        max_pools: int = 64,
        guard: DestinationGuard | None = None,
    ) -> None:
        """At most ``max_idle`` finished easy handles are kept for reuse, over all pools (a
        burst ends hundreds of transfers in one loop turn and starts as many, and a handle
        made anew costs more than the request), and at most ``max_pools`` pools with nothing
        in flight stay open; ``max_connects`` bounds the multi's own idle connection cache
        (libcurl's default: 4 x the transfers in flight). ``guard`` checks every connect
        address (None: any address)."""
        self._guard = guard
        self._transfers: dict[pycurl.Curl, Transfer] = {}
        self._handles = Handles(max_idle=max_idle, max_pools=max_pools, guarded=guard is not None)
        self._driver = MultiDriver(self._finish, self._failed, max_connects=max_connects)
        self._closed = False

    @property
    def in_flight(self) -> int:
        return len(self._transfers)

    @property
    def idle_handles(self) -> dict[str, int]:
        """Finished handles kept for reuse, per pool that has any."""
        return self._handles.idle

    async def send(
        self, options: Sequence[tuple[int, Any]], *, max_body_bytes: int, pool: str
    ) -> CurlResponse:
        """Perform one request; see ``transport.Transport.send``.

        Raises ``AttemptTimeout``, ``ResponseTooLarge`` or ``TransportError`` (its subclass
        ``DestinationRefused`` when the guard refused the connection). When the
        awaiting task is cancelled the handle leaves the multi at once (an unfinished
        HTTP/1 connection is closed, so the target sees the disconnect).
        """
        if self._closed:
            raise RuntimeError("CurlTransport is closed")
        loop = asyncio.get_running_loop()
        if self._driver.loop is not loop:
            self._driver.bind(loop)
        chosen = dict(options)  # what each option ends as (a later pair overrides)
        if self._guard is not None and pycurl.DOH_URL in chosen:
            options = await self._pin_doh(options, chosen, loop)
        curl = self._handles.acquire(chosen.keys(), pool)
        transfer = Transfer(loop.create_future(), max_body_bytes, self._guard)
        try:
            self._handles.prepare(curl, options, chosen, transfer)
            self._driver.add(curl)
        except pycurl.error as exc:  # an option or value this libcurl refuses
            self._handles.release(curl, failed=True)
            code, message = exc.args if len(exc.args) == 2 else (pycurl.E_FAILED_INIT, str(exc))
            raise error_from_curl(code, message) from None
        except BaseException:
            self._handles.release(curl, failed=True)
            raise
        self._transfers[curl] = transfer
        self._driver.added()
        try:
            return await transfer.future
        finally:
            if self._transfers.get(curl) is transfer:  # still running: we were cancelled
                del self._transfers[curl]
                self._driver.remove(curl)
                self._handles.release(curl)
            elif transfer.future.done() and not transfer.future.cancelled():
                transfer.future.exception()  # finished as we were cancelled: mark retrieved

    async def aclose(self) -> None:
        """Abort every transfer (their senders get ``CancelledError``) and free libcurl."""
        if self._closed:
            return
        self._closed = True
        transfers, self._transfers = self._transfers, {}
        self._driver.close(transfers)
        for transfer in transfers.values():
            transfer.future.cancel("transport closed")
        self._handles.close(transfers)

    def _finish(self, curl: pycurl.Curl, code: int, message: str) -> None:
        """libcurl is done with ``curl`` (out of the multi): answer its sender, free it."""
        transfer = self._transfers.pop(curl, None)
        if transfer is not None:
            transfer.settle(curl, code, message)
        self._handles.release(curl)

    def _failed(self, message: str) -> None:
        """The multi failed: nothing in flight can make progress any more."""
        for curl in list(self._transfers):
            self._driver.remove(curl)
            self._finish(curl, pycurl.E_FAILED_INIT, message)

    async def _pin_doh(
        self,
        options: Sequence[tuple[int, Any]],
        chosen: dict[int, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> list[tuple[int, Any]]:
        """``options`` with a ``RESOLVE`` entry pinning the DoH server's host to its checked
        addresses; ``DestinationRefused`` when any of them is refused (see the module doc)."""
        assert self._guard is not None
        parts = urlsplit(chosen[pycurl.DOH_URL])
        host = parts.hostname or ""
        try:
            port = parts.port or (80 if parts.scheme.lower() == "http" else 443)
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            # Never leave the look-up to libcurl: its answer would not be checked.
            raise error_from_curl(
                pycurl.E_COULDNT_RESOLVE_HOST, f"Could not resolve DoH server host: {exc}"
            ) from None
        addresses: list[str] = []
        for *_, address in found:
            ip = str(address[0])
            if (refusal := self._guard.refusal(ip)) is not None:
                raise DestinationRefused(f"DoH server: {refusal}")
            addresses.append(f"[{ip}]" if ":" in ip else ip)
        pin = f"{host}:{port}:{','.join(dict.fromkeys(addresses))}"
        resolve = chosen[pycurl.RESOLVE] = [*chosen.get(pycurl.RESOLVE, ()), pin]
        return [*(pair for pair in options if pair[0] != pycurl.RESOLVE), (pycurl.RESOLVE, resolve)]
