"""What the lifespan opens and the routes use: built once per app, found on request.state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from tasks_server.api.auth import Authenticator
from tasks_server.codec import TaskCodec
from tasks_server.metrics import Metrics
from tasks_server.scheduler import Scheduler
from tasks_server.schedules import ScheduleRunner
from tasks_server.settings import Settings
from tasks_server.signing_keys import SigningKeys
from tasks_server.store.base import TaskStore
from tasks_server.tracing import Tracing


@dataclass(slots=True)
class Services:
    settings: Settings
    store: TaskStore
    auth: Authenticator
    codec: TaskCodec
    scheduler: Scheduler
    metrics: Metrics
    signing_keys: SigningKeys
    schedules: ScheduleRunner
    tracing: Tracing
    clock: Callable[[], int]  # epoch ms on the clock every node agrees on (tasks_server.clock)


def services(request: Request) -> Services:
    return request.state.services  # type: ignore[no-any-return]
