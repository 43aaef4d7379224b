"""libcurl's multi-socket interface on the asyncio loop: ``MultiDriver`` runs one ``CurlMulti``.

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
"""

from __future__ import annotations

import asyncio
import logging
import selectors
from collections.abc import Callable, Iterable
from typing import Any

import pycurl

__all__ = ["START_EVERY", "MultiDriver"]

logger = logging.getLogger(__name__)

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

# libcurl starts an added handle at its next timer tick, and the loop runs timers and polls
# sockets only after every callback already ready: when a burst resumes hundreds of attempts
# in one loop turn, no request left before the last handle was added (220 ms for 1,000).
# Every this many added handles libcurl runs at once, and what has connected is sent.
START_EVERY = 16


class MultiDriver:
    """One ``CurlMulti`` driven by the loop it is bound to (``bind``, on first use).

    ``finished(curl, code, message)`` is called for every handle libcurl is done with, after
    it left the multi (``code`` 0: success); ``failed(message)`` when the multi itself failed,
    so that nothing in flight can make progress any more.
    """

    def __init__(
        self,
        finished: Callable[[pycurl.Curl, int, str], None],
        failed: Callable[[str], None],
        *,
        max_connects: int | None = None,
    ) -> None:
        self._finished = finished
        self._failed = failed
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, int] = {}  # fd -> selector events libcurl asked for
        self._timer: asyncio.Handle | None = None
        self._unstarted = 0  # handles added since libcurl last ran
        self._tick_at = 0.0  # when the timer fires (loop time)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        if max_connects is not None:
            self._multi.setopt(pycurl.M_MAXCONNECTS, max_connects)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the selector on ``loop``; a driver serves one loop only."""
        if self.loop is None:
            self.loop = loop
            loop.add_reader(self._selector.fileno(), self._on_ready)
        elif self.loop is not loop:
            raise RuntimeError("CurlTransport is bound to another event loop")

    def add(self, curl: pycurl.Curl) -> None:
        """Hand ``curl`` to libcurl; ``added`` once its transfer is registered."""
        self._multi.add_handle(curl)

    def added(self) -> None:
        """Start what was added at the next tick, or at once every ``START_EVERY`` handles
        (``finished`` may then be called for any of them)."""
        self._unstarted += 1
        if self._unstarted >= START_EVERY and self._socket_action(pycurl.SOCKET_TIMEOUT, 0):
            self._on_ready()

    def remove(self, curl: pycurl.Curl) -> None:
        """Take ``curl`` out before libcurl is done with it (``finished`` is not called)."""
        self._multi.remove_handle(curl)

    def close(self, in_flight: Iterable[pycurl.Curl]) -> None:
        """Take the handles ``in_flight`` out, then free the multi and the selector."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for curl in in_flight:
            self._multi.remove_handle(curl)
        self._multi.close()
        if self.loop is not None:
            self.loop.remove_reader(self._selector.fileno())
        self._selector.close()
        self._watched.clear()

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
        if self._closed or self.loop is None:
            return
        when = self.loop.time() + timeout_ms / 1000
        if self._timer is not None:
            if timeout_ms >= 0 and self._tick_at <= when:
                return
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0:
            self._timer = self.loop.call_at(when, self._on_timeout)
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
        """False when the multi failed (``failed`` has then been told)."""
        self._unstarted = 0  # every call also starts the handles added since the last
        while True:
            try:
                self._multi.socket_action(fd, mask)
            except pycurl.error as exc:
                if exc.args[0] == pycurl.E_CALL_MULTI_PERFORM:  # pre-7.20 libcurl: go again
                    continue
                logger.error("curl_multi_socket_action failed: %s", exc)
                self._failed(f"libcurl multi error: {exc}")
                return False
            return True

    def _read_info(self) -> None:
        multi, finished = self._multi, self._finished
        while True:
            queued, done, failed = multi.info_read()
            for curl in done:
                multi.remove_handle(curl)
                finished(curl, 0, "")
            for curl, code, message in failed:
                multi.remove_handle(curl)
                finished(curl, code, message)
            if not queued:
                break
