"""libcurl on the asyncio loop: ``CurlTransport`` drives one ``pycurl.CurlMulti``.

libcurl tells us which sockets to watch (``M_SOCKETFUNCTION``) and when it next needs a
timeout tick (``M_TIMERFUNCTION``); we keep the sockets in a selector of our own (epoll on
Linux) whose one descriptor the loop watches, and the tick in one ``loop.call_later`` handle.
When the selector is ready, every ready socket gets its ``socket_action`` in one loop
callback. No threads and no polling, so thousands of slow targets cost sockets, not threads.
The selector is what keeps an attempt cheap: libcurl watches a connection for writing, then
for reading, then not at all, on every request, and on the loop's own reader and writer
handles each of those changes costs several system calls and objects; here it costs one
``epoll_ctl``. Never call libcurl from inside its own callbacks: the timer is always
deferred to the loop.

Connections are never shared between owners. Each ``send`` names its ``pool`` (the owner
id), and each pool has its own ``CurlShare`` (DNS cache, TLS sessions, connection cache) and
its own idle easy handles, so repeated targets of one owner reuse connections while nothing
one owner sends on a connection (a desynchronised request, a half-read answer) can reach
another owner's attempt. libcurl only reuses a pooled connection when its TLS, proxy and
auth settings match the new request. Two kinds of option would still leak between one
owner's tasks, so their transfers do not share: options that plant DNS answers or shape the
connection (``_ISOLATED``) run on a handle with a private share, closed afterwards; options
that leave state in the handle itself (cookie engine, HSTS cache: ``reset()`` keeps both) run
on a handle that is closed instead of pooled. Pools idle the longest are closed beyond
``max_pools``.

A pooled handle keeps its options between transfers: the next transfer sets only the options
whose value changed (most of a task's options are the same objects on every attempt, see
``options.prepare``), and a handle is reset only when the set of options changes or its body
is large. Its callbacks are set once per handle (and again after a reset) and act for the
transfer it carries, through a ``_Slot``.

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
import logging
import selectors
import socket
from collections import OrderedDict
from collections.abc import KeysView, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pycurl

from .errors import DestinationRefused, ResponseTooLarge, error_from_curl
from .guard import DestinationGuard
from .transport import CurlResponse

__all__ = ["CurlTransport"]

logger = logging.getLogger(__name__)

_SHARED_DATA = ("LOCK_DATA_DNS", "LOCK_DATA_SSL_SESSION", "LOCK_DATA_CONNECT")


def _options(*names: str) -> frozenset[int]:
    return frozenset(getattr(pycurl, name) for name in names if hasattr(pycurl, name))


_ISOLATED = _options("RESOLVE", "DOH_URL", "DNS_SERVERS", "HAPROXYPROTOCOL", "HAPROXY_CLIENT_IP")
_STATEFUL = _options("COOKIEFILE", "COOKIEJAR", "COOKIE", "HSTS", "HSTS_CTRL")

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
# libcurl's POLL_IN/OUT/INOUT as selector events, and selector events as CSELECT bits.
_EVENTS = {
    pycurl.POLL_NONE: 0,
    pycurl.POLL_IN: _READ,
    pycurl.POLL_OUT: _WRITE,
    pycurl.POLL_INOUT: _READ | _WRITE,
}
_CSELECT = {
    _READ: pycurl.CSELECT_IN,
    _WRITE: pycurl.CSELECT_OUT,
    _READ | _WRITE: pycurl.CSELECT_IN | pycurl.CSELECT_OUT,
}


class _Transfer:
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


class _Slot:
    """A handle's callbacks, set once: they act for the transfer it carries (None when idle,
    so an idle handle keeps no response alive)."""

    __slots__ = ("transfer",)

    def __init__(self) -> None:
        self.transfer: _Transfer | None = None

    def write(self, chunk: bytes) -> int | None:
        assert self.transfer is not None
        return self.transfer.write(chunk)

    def header(self, line: bytes) -> None:
        assert self.transfer is not None
        self.transfer.header(line)

    def open_socket(self, purpose: int, address: Any) -> socket.socket | int:
        assert self.transfer is not None
        return self.transfer.open_socket(purpose, address)


# libcurl starts an added handle at its next timer tick, and the loop runs timers and polls
# sockets only after every callback already ready: when a burst resumes hundreds of attempts
# in one loop turn, no request left before the last handle was added (220 ms for 1,000).
# Every this many added handles libcurl runs at once, and what has connected is sent.
_START_EVERY = 16

# A pooled handle keeps its options only while its body is at most this large: an idle
# handle holds its last body.
_KEPT_BODY_BYTES = 65_536


@dataclass(slots=True)
class _Pool:
    """One owner's connections: a share (DNS, TLS sessions, connection cache) and idle handles."""

    share: pycurl.CurlShare
    idle: list[pycurl.Curl] = field(default_factory=list)
    busy: int = 0  # handles of this pool in use (a share cannot close under them)

    def close(self) -> None:
        for curl in self.idle:
            curl.close()
        self.idle.clear()
        self.share.close()


def _new_share(*data: str) -> pycurl.CurlShare:
    share = pycurl.CurlShare()
    for name in data:
        if hasattr(pycurl, name):  # LOCK_DATA_CONNECT needs libcurl >= 7.57
            share.setopt(pycurl.SH_SHARE, getattr(pycurl, name))
    return share


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
        self._max_idle = max_idle
        self._idle = 0  # idle handles over all pools
        self._max_pools = max_pools
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._pool_of: dict[pycurl.Curl, _Pool] = {}
        self._disposable: dict[pycurl.Curl, pycurl.CurlShare | None] = {}
        self._transfers: dict[pycurl.Curl, _Transfer] = {}
        self._slots: dict[pycurl.Curl, _Slot] = {}  # every open handle's
        self._applied: dict[pycurl.Curl, Sequence[tuple[int, Any]]] = {}  # kept options
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, int] = {}  # fd -> selector events libcurl asked for
        self._timer: asyncio.Handle | None = None
        self._unstarted = 0  # handles added since libcurl last ran
        self._tick_at = 0.0  # when the timer fires (loop time)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        if max_connects is not None:
            self._multi.setopt(pycurl.M_MAXCONNECTS, max_connects)

    @property
    def in_flight(self) -> int:
        return len(self._transfers)

    @property
    def idle_handles(self) -> dict[str, int]:
        """Finished handles kept for reuse, per pool that has any."""
        return {name: len(owned.idle) for name, owned in self._pools.items() if owned.idle}

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
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._selector.fileno(), self._on_ready)
        elif self._loop is not loop:
            raise RuntimeError("CurlTransport is bound to another event loop")
        chosen = dict(options)  # what each option ends as (a later pair overrides)
        if self._guard is not None and pycurl.DOH_URL in chosen:
            pin = await self._pin_doh(chosen[pycurl.DOH_URL], loop)
            resolve = [*chosen.get(pycurl.RESOLVE, ()), pin]
            options = [pair for pair in options if pair[0] != pycurl.RESOLVE]
            options.append((pycurl.RESOLVE, resolve))
            chosen[pycurl.RESOLVE] = resolve

        curl = self._handle_for(chosen.keys(), pool)
        transfer = _Transfer(loop.create_future(), max_body_bytes, self._guard)
        try:
            self._apply(curl, options, chosen)
            self._slots[curl].transfer = transfer
            self._multi.add_handle(curl)
        except pycurl.error as exc:  # an option or value this libcurl refuses
            self._applied.pop(curl, None)  # half set: reset before any reuse
            self._release(curl)
            code, message = exc.args if len(exc.args) == 2 else (pycurl.E_FAILED_INIT, str(exc))
            raise error_from_curl(code, message) from None
        except BaseException:
            self._applied.pop(curl, None)
            self._release(curl)
            raise
        self._transfers[curl] = transfer
        self._unstarted += 1
        if self._unstarted >= _START_EVERY and self._socket_action(pycurl.SOCKET_TIMEOUT, 0):
            self._on_ready()
        try:
            return await transfer.future
        finally:
            if self._transfers.get(curl) is transfer:  # still running: we were cancelled
                del self._transfers[curl]
                self._multi.remove_handle(curl)
                self._release(curl)
            elif transfer.future.done() and not transfer.future.cancelled():
                transfer.future.exception()  # finished as we were cancelled: mark retrieved

    def _apply(
        self, curl: pycurl.Curl, options: Sequence[tuple[int, Any]], chosen: dict[int, Any]
    ) -> None:
        """Set `options` on `curl`; on a handle that kept the same options in the same order,
        only those whose value changed."""
        kept = self._applied.pop(curl, None)
        if kept is not None and (
            len(kept) != len(options)
            or any(old[0] != new[0] for old, new in zip(kept, options, strict=True))
        ):
            self._reset(curl)
            kept = None
        if kept is None:
            for option, value in options:
                curl.setopt(option, value)
        else:
            for old, new in zip(kept, options, strict=True):
                if old != new:
                    curl.setopt(*new)
        # Not with an option given twice (the later wins: setting only a changed earlier
        # one would end on the wrong value), nor on a handle closed after this transfer.
        body = chosen.get(pycurl.POSTFIELDS, b"")
        if (
            len(chosen) == len(options)
            and len(body) <= _KEPT_BODY_BYTES
            and curl not in self._disposable
        ):
            self._applied[curl] = options

    def _reset(self, curl: pycurl.Curl) -> None:
        """Drop every option and callback (not the share), then set the callbacks again."""
        curl.reset()
        self._prime(curl, self._slots[curl])

    def _prime(self, curl: pycurl.Curl, slot: _Slot) -> None:
        curl.setopt(pycurl.WRITEFUNCTION, slot.write)
        curl.setopt(pycurl.HEADERFUNCTION, slot.header)
        if self._guard is not None:
            curl.setopt(pycurl.OPENSOCKETFUNCTION, slot.open_socket)
        curl.setopt(pycurl.NOSIGNAL, 1)

    async def _pin_doh(self, url: str, loop: asyncio.AbstractEventLoop) -> str:
        """The ``RESOLVE`` entry pinning the DoH server's host to its checked addresses;
        ``DestinationRefused`` when any of them is refused (see the module doc)."""
        assert self._guard is not None
        parts = urlsplit(url)
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
        return f"{host}:{port}:{','.join(dict.fromkeys(addresses))}"

    async def aclose(self) -> None:
        """Abort every transfer (their senders get ``CancelledError``) and free libcurl."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transfers, self._transfers = self._transfers, {}
        for curl, transfer in transfers.items():
            self._multi.remove_handle(curl)
            transfer.future.cancel("transport closed")
            curl.close()
        self._slots.clear()
        self._applied.clear()
        self._multi.close()
        if self._loop is not None:
            self._loop.remove_reader(self._selector.fileno())
        self._selector.close()
        self._watched.clear()
        for share in self._disposable.values():
            if share is not None:
                share.close()
        self._disposable.clear()
        self._pool_of.clear()
        pools, self._pools = self._pools, OrderedDict()
        self._idle = 0
        for owned in pools.values():
            owned.close()

    # libcurl callbacks: must not call back into libcurl.

    def _on_socket(self, what: int, fd: int, _multi: pycurl.CurlMulti, _socketp: Any) -> None:
        if self._closed:
            return
        want = 0 if what == pycurl.POLL_REMOVE else _EVENTS[what & pycurl.POLL_INOUT]
        have = self._watched.get(fd, 0)
        if want == have:
            return
        if not want:
            del self._watched[fd]
            self._selector.unregister(fd)
            return
        self._watched[fd] = want
        if have:
            self._selector.modify(fd, want)
        else:
            self._selector.register(fd, want)

    def _on_timer(self, timeout_ms: int) -> None:
        """Keep a tick that comes no later than the one asked for: libcurl asks again on
        every added handle and state change, and a tick too early only makes it ask anew."""
        if self._closed or self._loop is None:
            return
        when = self._loop.time() + timeout_ms / 1000
        if self._timer is not None:
            if timeout_ms >= 0 and self._tick_at <= when:
                return
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0:
            self._timer = self._loop.call_at(when, self._on_timeout)
            self._tick_at = when

    # Loop callbacks.

    def _on_ready(self) -> None:
        """The selector has ready sockets: act on each, then collect what finished."""
        if self._closed:
            return
        for key, events in self._selector.select(0):
            # A socket libcurl dropped while acting on an earlier one is ignored by libcurl.
            if not self._socket_action(key.fd, _CSELECT[events]):
                return
        self._read_info()

    def _on_timeout(self) -> None:
        self._timer = None
        if not self._closed and self._socket_action(pycurl.SOCKET_TIMEOUT, 0):
            self._read_info()

    def _socket_action(self, fd: int, mask: int) -> bool:
        """False when the multi failed (every transfer is then finished with the error)."""
        self._unstarted = 0  # every call also starts the handles added since the last
        while True:
            try:
                self._multi.socket_action(fd, mask)
            except pycurl.error as exc:
                if exc.args[0] == pycurl.E_CALL_MULTI_PERFORM:  # pre-7.20 libcurl: go again
                    continue
                # A multi-level failure: nothing in flight can make progress any more.
                logger.error("curl_multi_socket_action failed: %s", exc)
                for curl in list(self._transfers):
                    self._finish(curl, pycurl.E_FAILED_INIT, f"libcurl multi error: {exc}")
                return False
            return True

    def _read_info(self) -> None:
        while True:
            queued, done, failed = self._multi.info_read()
            for curl in done:
                self._finish(curl, 0, "")
            for curl, code, message in failed:
                self._finish(curl, code, message)
            if not queued:
                break

    def _finish(self, curl: pycurl.Curl, code: int, message: str) -> None:
        self._multi.remove_handle(curl)
        transfer = self._transfers.pop(curl, None)
        if transfer is not None and not transfer.future.done():
            future = transfer.future
            if transfer.too_large or code == pycurl.E_FILESIZE_EXCEEDED:
                cap = transfer.max_body_bytes
                status = curl.getinfo(pycurl.RESPONSE_CODE)
                future.set_exception(ResponseTooLarge(f"Response body exceeds {cap} bytes", status))
            elif code == pycurl.E_COULDNT_CONNECT and transfer.refused is not None:
                future.set_exception(DestinationRefused(transfer.refused))
            elif code:
                future.set_exception(error_from_curl(code, message))
            else:
                future.set_result(
                    CurlResponse(
                        status_code=curl.getinfo(pycurl.RESPONSE_CODE),
                        body=b"".join(transfer.chunks),
                        total_time_ms=curl.getinfo(pycurl.TOTAL_TIME_T) / 1000,
                        effective_url=curl.getinfo(pycurl.EFFECTIVE_URL),
                        retry_after=transfer.retry_after,
                    )
                )
        self._release(curl)

    def _handle_for(self, used: KeysView[int], pool: str) -> pycurl.Curl:
        if used & _ISOLATED:
            share = _new_share("LOCK_DATA_DNS", "LOCK_DATA_CONNECT")
            curl = self._new_handle(share)
            self._disposable[curl] = share
            return curl
        owned = self._pool(pool)
        if used & _STATEFUL:
            curl = self._new_handle(owned.share)
            self._disposable[curl] = None
        elif owned.idle:
            curl = owned.idle.pop()
            self._idle -= 1
        else:
            curl = self._new_handle(owned.share)
        owned.busy += 1
        self._pool_of[curl] = owned
        return curl

    def _pool(self, name: str) -> _Pool:
        owned = self._pools.get(name)
        if owned is None:
            owned = self._pools[name] = _Pool(_new_share(*_SHARED_DATA))
            self._evict_idle_pools()
        self._pools.move_to_end(name)
        return owned

    def _evict_idle_pools(self) -> None:
        """Close the least recently used pools with nothing in flight, beyond ``max_pools``."""
        excess = len(self._pools) - self._max_pools
        for name in [name for name, owned in self._pools.items() if not owned.busy][:excess]:
            owned = self._pools.pop(name)
            self._idle -= len(owned.idle)
            for curl in owned.idle:
                self._forget(curl)
            owned.close()

    def _make_room(self) -> bool:
        """Close the oldest idle handle of the pool used the longest ago, to keep a newer
        one within ``max_idle``; False when no handle is idle."""
        for owned in self._pools.values():
            if owned.idle:
                self._close(owned.idle.pop(0))
                self._idle -= 1
                return True
        return False

    def _new_handle(self, share: pycurl.CurlShare) -> pycurl.Curl:
        curl = pycurl.Curl()
        # Once per handle: reset() keeps the share, and pycurl refuses to set it twice.
        curl.setopt(pycurl.SHARE, share)
        slot = self._slots[curl] = _Slot()
        self._prime(curl, slot)
        return curl

    def _forget(self, curl: pycurl.Curl) -> None:
        self._slots.pop(curl, None)
        self._applied.pop(curl, None)

    def _close(self, curl: pycurl.Curl) -> None:
        self._forget(curl)
        curl.close()

    def _release(self, curl: pycurl.Curl) -> None:
        """Return a finished handle to its pool, keeping its options when `_apply` kept them
        (reset otherwise), or close it."""
        slot = self._slots.get(curl)
        if slot is not None:
            slot.transfer = None
        owned = self._pool_of.pop(curl, None)
        if owned is not None:
            owned.busy -= 1
        if curl in self._disposable:
            share = self._disposable.pop(curl)
            self._close(curl)
            if share is not None:
                share.close()
        elif (
            self._closed
            or owned is None
            or (self._idle >= self._max_idle and not self._make_room())
        ):
            self._close(curl)
        else:
            if curl not in self._applied:
                self._reset(curl)
            owned.idle.append(curl)
            self._idle += 1
