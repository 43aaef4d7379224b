"""Start-up warnings for a server that listens beyond this host (SPEC §10.3, §15.2).

Both are configurations a single-user box may want, so they warn rather than refuse.
"""

from __future__ import annotations

import logging

from tasks_server.settings import Settings

__all__ = ["warn_if_exposed"]

log = logging.getLogger(__name__)


def warn_if_exposed(settings: Settings) -> None:
    if settings.host_is_loopback:
        return
    if settings.admin_key is None:
        log.warning(
            "ADMIN_KEY is not set and HOST %s is not a loopback address: anyone who can "
            "reach the server can register owners",
            settings.host,
            extra={"action": "registration_open"},
        )
    guard = settings.destination_guard
    reached = [word for word in ("loopback", "private") if guard.reaches(word)]
    if reached:
        log.warning(
            "HOST %s is not a loopback address and DESTINATION_DENY lets tasks reach %s "
            "addresses: a task could call this server's own API or the host's other "
            "services; set DESTINATION_DENY=loopback,private,link-local,metadata",
            settings.host,
            " and ".join(reached),
            extra={"action": "destinations_open"},
        )
