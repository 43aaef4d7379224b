"""libcurl easy handles by owner: ``Handles`` hands one out per transfer and keeps it for reuse.

Connections are never shared between owners. Each transfer names its ``pool`` (the owner
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
transfer it carries, through a ``transfer.Slot``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, KeysView, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycurl

from .transfer import Slot, Transfer

__all__ = ["Handles"]

_SHARED_DATA = ("LOCK_DATA_DNS", "LOCK_DATA_SSL_SESSION", "LOCK_DATA_CONNECT")


def _options(*names: str) -> frozenset[int]:
    return frozenset(getattr(pycurl, name) for name in names if hasattr(pycurl, name))


_ISOLATED = _options("RESOLVE", "DOH_URL", "DNS_SERVERS", "HAPROXYPROTOCOL", "HAPROXY_CLIENT_IP")
_STATEFUL = _options("COOKIEFILE", "COOKIEJAR", "COOKIE", "HSTS", "HSTS_CTRL")

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


class Handles:
    """Every open easy handle: the ones in use, and the idle ones of each owner's pool."""

    def __init__(self, *, max_idle: int, max_pools: int, guarded: bool) -> None:
        """At most ``max_idle`` idle handles over all pools, and at most ``max_pools`` pools
        with nothing in flight; ``guarded``: every handle gets an OPENSOCKETFUNCTION."""
        self._guarded = guarded
        self._max_idle = max_idle
        self._idle = 0  # idle handles over all pools
        self._max_pools = max_pools
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._pool_of: dict[pycurl.Curl, _Pool] = {}
        self._disposable: dict[pycurl.Curl, pycurl.CurlShare | None] = {}
        self._slots: dict[pycurl.Curl, Slot] = {}  # every open handle's
        self._applied: dict[pycurl.Curl, Sequence[tuple[int, Any]]] = {}  # kept options
        self._closed = False

    @property
    def idle(self) -> dict[str, int]:
        """Idle handles per pool that has any."""
        return {name: len(owned.idle) for name, owned in self._pools.items() if owned.idle}

    def acquire(self, used: KeysView[int], pool: str) -> pycurl.Curl:
        """A handle for a transfer setting the options ``used``, on behalf of ``pool``."""
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

    def prepare(
        self,
        curl: pycurl.Curl,
        options: Sequence[tuple[int, Any]],
        chosen: dict[int, Any],
        transfer: Transfer,
    ) -> None:
        """Set ``options`` on ``curl`` (``chosen``: what each ends as) and point its callbacks
        at ``transfer``. On a handle that kept the same options in the same order, only those
        whose value changed are set."""
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
        self._slots[curl].transfer = transfer

    def release(self, curl: pycurl.Curl, *, failed: bool = False) -> None:
        """Return a finished handle to its pool, keeping its options when ``prepare`` kept
        them and the transfer did not fail to start (``failed``: reset otherwise), or close it."""
        if failed:
            self._applied.pop(curl, None)  # half set: reset before any reuse
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

    def close(self, in_flight: Iterable[pycurl.Curl]) -> None:
        """Close the handles ``in_flight`` (out of the multi already), then every pool."""
        self._closed = True
        for curl in in_flight:
            curl.close()
        self._slots.clear()
        self._applied.clear()
        for share in self._disposable.values():
            if share is not None:
                share.close()
        self._disposable.clear()
        self._pool_of.clear()
        pools, self._pools = self._pools, OrderedDict()
        self._idle = 0
        for owned in pools.values():
            owned.close()

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
        slot = self._slots[curl] = Slot()
        self._prime(curl, slot)
        return curl

    def _reset(self, curl: pycurl.Curl) -> None:
        """Drop every option and callback (not the share), then set the callbacks again."""
        curl.reset()
        self._prime(curl, self._slots[curl])

    def _prime(self, curl: pycurl.Curl, slot: Slot) -> None:
        curl.setopt(pycurl.WRITEFUNCTION, slot.write)
        curl.setopt(pycurl.HEADERFUNCTION, slot.header)
        if self._guarded:
            curl.setopt(pycurl.OPENSOCKETFUNCTION, slot.open_socket)
        curl.setopt(pycurl.NOSIGNAL, 1)

    def _forget(self, curl: pycurl.Curl) -> None:
        self._slots.pop(curl, None)
        self._applied.pop(curl, None)

    def _close(self, curl: pycurl.Curl) -> None:
        self._forget(curl)
        curl.close()
