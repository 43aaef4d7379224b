"""The databases the bench measures, filled through the store's own API: owners by
`TaskStore.create_owner`, tasks sealed by `TaskCodec` exactly as registration stores them and
inserted by `TaskStore.insert_many` in one transaction, counted by the store's own reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from ulid import ULID

from scripts.benchmark.processes import CIPHER_KEY, MAX_TASKS
from tasks_server.api.auth import digest, new_key
from tasks_server.codec import TaskCodec
from tasks_server.crypto import Cipher
from tasks_server.models.queues import QueueRegistration
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import AttemptRow, InsertOutcome, NewTask, TaskStore
from tasks_server.timeutil import now_ms

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.id}


@contextlib.contextmanager
def open_db(location: Path | str) -> Iterator[BenchDb]:
    """The database at `location` (a SQLite file, or a PostgreSQL URL: what `start_server` is
    given too), open through the store while the block lasts."""
    # These settings alone: neither the developer's .env nor a DATABASE_URL exported.
    if isinstance(location, Path):
        settings = Settings(_env_file=None, path_sqlite=location, database_url=None)
    else:
        settings = Settings(_env_file=None, database_url=location, cipher_key=CIPHER_KEY)
    store = build_store(settings)
    with asyncio.Runner() as runner:
        runner.run(store.open())
        try:
            yield BenchDb(location, store, runner)
        finally:
            runner.run(store.close())


@dataclass(frozen=True, slots=True)
class BenchDb:
    """A database of the run, through the store's API (`open_db`)."""

    location: Path | str
    _store: TaskStore
    _runner: asyncio.Runner

    def create_owners(self, names: Sequence[str]) -> list[Owner]:
        """New owners with these names, each with a key of its own."""
        made = [Owner(str(ULID()), name, new_key()) for name in names]
        for owner in made:
            created = self._store.create_owner(
                owner_id=owner.id,
                name=owner.name,
                key_digest=digest(owner.key),
                created_at=now_ms(),
            )
            self._runner.run(created)
        return made

    def seed(
        self, owner: Owner, dues: Sequence[int], url: str, config: dict[str, Any] | None = None
    ) -> list[str]:
        """RUNNING GET tasks of `owner` to `url` (with `config`), due at `dues`, in one
        transaction; their ids, in order."""
        tasks = sealed_tasks(dues, url, config)
        self.insert(owner, tasks)
        return [task.queue_id for task in tasks]

    def insert(self, owner: Owner, tasks: Sequence[NewTask]) -> None:
        """`tasks` of `owner`, in one transaction."""
        outcome = self._runner.run(self._store.insert_many(owner.id, tasks, limit=MAX_TASKS))
        if outcome is not InsertOutcome.INSERTED:
            raise RuntimeError(f"seeding {owner.name} failed: {outcome.name}")

    def running(self, owner: Owner) -> int:
        """The owner's RUNNING tasks (cheap: polled while measuring)."""
        return self._runner.run(self._store.ids_in_state(owner.id, "RUNNING", 0))[1]

    def attempts(self, queue_id: str) -> list[AttemptRow]:
        """A task's attempts, oldest first."""
        return self._runner.run(self._store.attempts(queue_id, limit=1000, offset=0))

    def states(self) -> dict[str, int]:
        """How many tasks are in each state, every owner's."""
        return self._runner.run(self._store.count_by_state())


def sealed_tasks(
    dues: Sequence[int], url: str, config: dict[str, Any] | None = None
) -> list[NewTask]:
    """GET tasks to `url` due at `dues`. The request blob is what registration stores: the
    validated document sealed by the task codec with the task's id as associated data."""
    codec = TaskCodec(Cipher.from_secret(CIPHER_KEY))
    reg = QueueRegistration.model_validate(
        {"httpRequest": {"url": url, "method": "GET"}, "config": config or {}},
        context={"check_future": False},
    )
    document = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
    document.pop("metadata", None)
    plain = orjson.dumps(document)
    created = now_ms()
    return [
        NewTask(
            queue_id, created, due, reg.config.retry, codec.seal(plain, queue_id, "request"), None
        )
        for queue_id, due in zip(new_ids(len(dues)), dues, strict=True)
    ]


def new_ids(count: int) -> list[str]:
    """`count` distinct ULIDs: one random 20-char prefix and a 6-char counter (fast for 1M)."""
    prefix = str(ULID())[:20]
    pairs = _PAIRS
    return [
        prefix + pairs[i >> 20] + pairs[(i >> 10) & 1023] + pairs[i & 1023] for i in range(count)
    ]
