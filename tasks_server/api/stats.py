"""``GET /v1/stats``: the owner's overview (SPEC §19.4), read from running aggregates."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse
from tasks_server.models.stats import (
    TOP_DESTINATIONS,
    WINDOWS_MS,
    DestinationOut,
    LatenessOut,
    MinuteOut,
    StatsOut,
    StatsQuery,
    percentile,
)
from tasks_server.services import services

MINUTE_MS = 60_000


async def stats(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    query = StatsQuery.model_validate(dict(request.query_params))
    now = svc.clock()
    since = now - WINDOWS_MS[query.window]
    # The minute holding `since` counts whole: the window reads as whole minutes.
    found = await svc.store.stats(
        owner_id, since=since // MINUTE_MS * MINUTE_MS, top=TOP_DESTINATIONS
    )
    minutes: dict[int, dict[str, int]] = {}
    for minute, outcome, count in found.attempts:
        minutes.setdefault(minute, {})[outcome] = count
    out = StatsOut(
        window=query.window,
        from_=since,
        to=now,
        attempts_per_minute=[MinuteOut(minute=m, outcomes=o) for m, o in minutes.items()],
        lateness=LatenessOut(
            attempts=sum(found.lateness.values()),
            p50_ms=percentile(found.lateness, 0.5),
            p99_ms=percentile(found.lateness, 0.99),
        ),
        top_failing_destinations=[
            DestinationOut(destination=d, failures=n) for d, n in found.failures
        ],
        states=found.states,
    )
    return JSONResponse(out.model_dump(by_alias=True))


routes = [Route("/v1/stats", stats, methods=["GET"])]
