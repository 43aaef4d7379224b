"""The scheduler against a real store (SQLite and PostgreSQL), a fake transport, a clock to step.

The wall clock is the real one plus an offset the test moves (an NTP step, a VM resume); the
monotonic clock is the real one. The transport answers when the test lets it, and counts
how many attempts of each task are in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pycurl
import pytest
from ulid import ULID

from tasks_server import scheduler as scheduler_module
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.crypto import Cipher
from tasks_server.executor.runner import Runner
from tasks_server.executor.transport import CurlResponse
from tasks_server.lifecycle import Change
from tasks_server.metrics import Metrics
from tasks_server.models.queues import QueueRegistration
from tasks_server.scheduler import LEASE_MS, Scheduler, background, held
from tasks_server.store.base import QueueRow, StoreUnavailable, TaskStore
from tasks_server.store.postgres import PostgresStore
from tasks_server.store.sqlite import SqliteStore
from tasks_server.timeutil import now_ms

OWNER, OTHER = str(ULID()), str(ULID())


class Clock:
    def __init__(self) -> None:
        self.offset_ms = 0
        self.frozen: int | None = None  # the wall clock stands still here while set

    def wall(self) -> int:
        return now_ms() + self.offset_ms if self.frozen is None else self.frozen


class FakeTransport:
    """Records each send by path; paths in `held` answer only once released."""

    def __init__(self) -> None:
        self.sends: list[str] = []
        self.held: set[str] = set()
        self.status: dict[str, int] = {}
        self.current: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.in_flight = self.peak_in_flight = 0
        self._released: dict[str, asyncio.Event] = {}

    def release(self, path: str) -> None:
        self.held.discard(path)
        self._released.setdefault(path, asyncio.Event()).set()

    async def send(
        self, options: Sequence[tuple[int, Any]], *, max_body_bytes: int, pool: str
    ) -> CurlResponse:
        url = dict(options)[pycurl.URL]
        path = urlsplit(url).path
        self.sends.append(path)
        self.current[path] += 1
        self.peak[path] = max(self.peak[path], self.current[path])
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if path in self.held:
                await self._released.setdefault(path, asyncio.Event()).wait()
            return CurlResponse(self.status.get(path, 200), b"ok", 1.0, url)
        finally:
            self.current[path] -= 1
            self.in_flight -= 1


class Harness:
    def __init__(self, clock: Clock, make_store: Callable[[], TaskStore]) -> None:
        self.clock = clock
        self.make_store = make_store
        self.store = make_store()
        self.codec = TaskCodec(Cipher.from_secret("scheduler-test"))
        self.transport = FakeTransport()
        self.metrics = Metrics()
        self.scheduler: Scheduler | None = None
        self.others: list[tuple[Scheduler, TaskStore]] = []

    async def start(self, **options: Any) -> Scheduler:
        await self.store.open()
        for owner_id, name in ((OWNER, "owner-one"), (OTHER, "owner-two")):
            await self.store.create_owner(
                owner_id=owner_id, name=name, key_digest=b"-", created_at=0
            )
        self.scheduler = await self._scheduler(self.store, self.metrics, **options)
        return self.scheduler

    async def start_other(self, **options: Any) -> Scheduler:
        """A second process (or node) on the same database, sending through the same
        transport, so the transport sees the attempts in flight of both."""
        store = self.make_store()
        await store.open()
        scheduler = await self._scheduler(store, Metrics(), cluster=True, **options)
        self.others.append((scheduler, store))
        return scheduler

    async def _scheduler(self, store: TaskStore, metrics: Metrics, **options: Any) -> Scheduler:
        runner = Runner(self.transport, max_body_bytes=1000, certs_dir=None)  # type: ignore[arg-type]
        scheduler = Scheduler(
            store,
            self.codec,
            runner,
            ConnectivityGate("", 5000),
            metrics,
            signing_keys=self.signing_keys,
            clock=self.clock.wall,
            **options,
        )
        await scheduler.start()
        return scheduler

    async def signing_keys(self, owner_id: str) -> tuple[bytes, ...]:
        return (owner_id.encode(),)

    async def add(self, path: str, *, delay_ms: int = 1, owner: str = OWNER, **config: Any) -> str:
        """Insert a task as another process would, without telling the scheduler."""
        now = self.clock.wall()
        document = {
            "httpRequest": {"url": f"http://127.0.0.1:9{path}", "method": "GET"},
            "config": {"executionDelay": delay_ms, **config},
        }
        reg = QueueRegistration.model_validate(document, context={"now": now})
        queue_id = str(ULID())
        outcome, row = await self.store.insert(
            queue_id=queue_id,
            owner_id=owner,
            created_at=now,
            due=now + delay_ms,
            retry_limit=reg.config.retry,
            request=self.codec.seal_request(reg, queue_id),
            metadata=None,
            limit=1000,
            lease=None,
            flow=self.codec.flow(reg, owner),
        )
        assert row is not None, outcome
        return queue_id

    async def row(self, queue_id: str) -> QueueRow:
        row = await self.store.reload(queue_id)
        assert row is not None
        return row

    async def lease_of(self, queue_id: str) -> str | None:
        if isinstance(self.store, PostgresStore):
            sql = "SELECT lease_owner FROM queues WHERE id = $1"
            conn = await asyncpg.connect(self.store.postgres.url)
            try:
                return await conn.fetchval(sql, queue_id)  # type: ignore[no-any-return]
            finally:
                await conn.close()
        assert isinstance(self.store, SqliteStore)
        sql = "SELECT lease_owner FROM queues WHERE id = ?"
        found = await self.store.sqlite.db.fetchone(sql, (queue_id,))
        assert found is not None
        return found[0]  # type: ignore[no-any-return]

    async def outcomes(self, queue_id: str) -> list[str]:
        rows = await self.store.attempts(queue_id, limit=100, offset=0)
        return [row.outcome for row in rows]

    async def close(self) -> None:
        for scheduler, store in self.others:
            await scheduler.stop(1.0)
            await store.close()
        if self.scheduler is not None:
            await self.scheduler.stop(1.0)
        await self.store.close()


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll a condition with a deadline (re-evaluated after every loop turn)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


async def state_is(h: Harness, queue_id: str, state: str) -> bool:
    return (await h.row(queue_id)).state == state


@pytest.fixture(params=["sqlite", "postgres"])
async def h(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    clock = Clock()
    make_store: Callable[[], TaskStore]
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        make_store = lambda: PostgresStore(url)  # noqa: E731
    else:
        make_store = lambda: SqliteStore(tmp_path / "tasks.db", clock=clock.wall)  # noqa: E731
    harness = Harness(clock, make_store)
    yield harness
    for path in list(harness.transport.held):
        harness.transport.release(path)
    await harness.close()


async def test_forward_clock_step_never_resends_an_attempt_in_flight(h: Harness) -> None:
    scheduler = await h.start()
    h.transport.held.add("/slow")
    queue_id = await h.add("/slow")
    await until(lambda: h.transport.sends == ["/slow"])
    h.clock.offset_ms += LEASE_MS + 5_000  # every lease now looks expired
    await scheduler.producer.claim()
    await scheduler.producer.claim()
    h.transport.release("/slow")
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert h.transport.sends == ["/slow"]
    assert await h.outcomes(queue_id) == ["SUCCESS"]


async def test_backward_clock_step_does_not_stall_polling(h: Harness) -> None:
    await h.start()
    await until(lambda: True)  # one loop turn: the first poll is behind us
    h.clock.offset_ms -= 20_000
    started = time.monotonic()
    queue_id = await h.add("/soon", delay_ms=300)  # by another process: found by polling
    await until(lambda: state_is(h, queue_id, "SUCCESS"), timeout=5)
    assert time.monotonic() - started < 5


async def test_failed_outcome_write_is_retried(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "WRITE_RETRIES_S", (0.01,) * 5)
    record, failures = h.store.record, []

    async def flaky(*args: Any, **kwargs: Any) -> bool:
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return await record(*args, **kwargs)

    monkeypatch.setattr(h.store, "record", flaky)
    await h.start()
    queue_id = await h.add("/flaky")
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert len(failures) == 2 and h.transport.sends == ["/flaky"]
    assert await h.outcomes(queue_id) == ["SUCCESS"]


async def test_outcome_write_that_keeps_failing_frees_the_task(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "WRITE_RETRIES_S", (0.01,) * 3)
    record = h.store.record

    async def broken(*args: Any, **kwargs: Any) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(h.store, "record", broken)
    await h.start()
    queue_id = await h.add("/lost")
    # Not left leased and "in flight" by a process that no longer means to run it: it is
    # given up, so it runs again...
    await until(lambda: len(h.transport.sends) >= 2)
    assert "INTERRUPTED" in await h.outcomes(queue_id)
    # ...and once writes work again, it ends.
    monkeypatch.setattr(h.store, "record", record)
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert set(h.transport.sends) == {"/lost"}


async def test_an_outage_longer_than_the_write_retries_leaves_no_task_running(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the outcome nor the release can be written for longer than the retries last:
    the task is neither lost in RUNNING nor re-sent; its outcome lands once writes work."""
    monkeypatch.setattr(background, "WRITE_RETRIES_S", (0.01,) * 3)
    record, abandon, failed, outage = h.store.record, h.store.abandon, [], [True]

    def down(write: Callable[..., Any]) -> Callable[..., Any]:
        async def failing(*args: Any, **kwargs: Any) -> Any:
            if outage:
                failed.append(write.__name__)
                raise sqlite3.OperationalError("database or disk is full")
            return await write(*args, **kwargs)

        return failing

    monkeypatch.setattr(h.store, "record", down(record))
    monkeypatch.setattr(h.store, "abandon", down(abandon))
    await h.start()
    queue_id = await h.add("/outage")
    await until(lambda: failed.count("abandon") >= 10)  # well past the quick retries
    outage.clear()  # between two tries, as a database comes back
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert h.transport.sends == ["/outage"]
    assert await h.outcomes(queue_id) == ["SUCCESS"]


async def test_an_outage_that_lets_some_writes_through_does_not_resend_the_outcome(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of connections, the outcome write fails long after the quick retries while a
    release could succeed: the outcome waits and is recorded; the target is not sent it again."""
    monkeypatch.setattr(background, "WRITE_RETRIES_S", (0.01,) * 3)
    record, failed = h.store.record, []

    async def starved(*args: Any, **kwargs: Any) -> bool:
        if len(failed) < 12:
            failed.append(1)
            raise StoreUnavailable("sorry, too many clients already")
        return await record(*args, **kwargs)

    monkeypatch.setattr(h.store, "record", starved)
    await h.start()
    queue_id = await h.add("/starved")
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert len(failed) == 12 and h.transport.sends == ["/starved"]
    assert await h.outcomes(queue_id) == ["SUCCESS"]


async def test_a_set_back_through_an_outage_is_logged_once_without_a_traceback(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(held, "SETBACK_MS", (10, 40))
    caplog.set_level(logging.INFO, logger="tasks_server")
    failures: list[int] = []
    keys = h.signing_keys

    async def away(owner_id: str) -> tuple[bytes, ...]:
        if len(failures) < 3:
            failures.append(1)
            raise StoreUnavailable("connection refused")
        return await keys(owner_id)

    monkeypatch.setattr(h, "signing_keys", away)
    await h.start()
    queue_id = await h.add("/away")
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    records = [r for r in caplog.records if r.name == "tasks_server.scheduler"]
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        "scheduler: the database is unavailable"
    ]


async def test_a_failure_of_ours_before_sending_spends_no_retry(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signing keys cannot be read (too many clients): nothing was sent, so the task is
    released to run again, and its retries (none here) are not spent."""
    monkeypatch.setattr(held, "SETBACK_MS", (10, 40))
    failures: list[int] = []
    keys = h.signing_keys

    async def flaky(owner_id: str) -> tuple[bytes, ...]:
        if len(failures) < 3:
            failures.append(1)
            raise ConnectionError("sorry, too many clients already")
        return await keys(owner_id)

    monkeypatch.setattr(h, "signing_keys", flaky)
    await h.start()
    queue_id = await h.add("/ours", retry=0)
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert h.transport.sends == ["/ours"]
    assert (await h.row(queue_id)).retry_count == 0
    assert await h.outcomes(queue_id) == ["INTERRUPTED"] * 3 + ["SUCCESS"]


async def test_a_refused_start_frees_its_slot_once_when_reading_the_task_fails(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start is refused (another process changed the task) and reading the task back
    fails once (the database is away): the attempt's slot is freed once, so the count of
    attempts in flight (the gauge, and the owners' shares) stays true."""
    monkeypatch.setattr(background, "WRITE_RETRIES_S", (0.01,) * 3)
    monkeypatch.setattr(held, "SETBACK_MS", (10, 40))
    started, starting, go = h.store.started, asyncio.Event(), asyncio.Event()

    async def after_the_change(*args: Any, **kwargs: Any) -> int | None:
        starting.set()
        await go.wait()
        return await started(*args, **kwargs)

    reload, failed = h.store.reload, []

    async def away_once(queue_id: str) -> QueueRow | None:
        if not failed:
            failed.append(queue_id)
            raise StoreUnavailable("connection refused")
        return await reload(queue_id)

    monkeypatch.setattr(h.store, "started", after_the_change)
    scheduler = await h.start()
    queue_id = await h.add("/changed")
    await asyncio.wait_for(starting.wait(), 5)
    bump = Change(estimate_execution_at=(await h.row(queue_id)).estimate_execution_at)
    assert isinstance(await h.store.change(OWNER, queue_id, lambda _row: bump), QueueRow)
    monkeypatch.setattr(h.store, "reload", away_once)
    go.set()
    await until(lambda: failed)  # the scheduler's read, not one of this test's
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert failed == [queue_id] and h.transport.sends == ["/changed"]
    await scheduler.producer.run_once()  # a turn shows the count in the gauge
    assert h.metrics.registry.get_sample_value("tasks_attempts_in_flight") == 0


async def test_a_retry_claimed_while_its_outcome_is_written_runs_on_time(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that runs right after an outcome write (group commit) leases the retry before
    the scheduler has taken the outcome in: it still runs at its time, not a lease later."""
    scheduler = await h.start()
    record = h.store.record

    async def record_then_claim(*args: Any, **kwargs: Any) -> bool:
        applied = await record(*args, **kwargs)
        await scheduler.producer.claim()
        return applied

    monkeypatch.setattr(h.store, "record", record_then_claim)
    h.transport.status["/again"] = 503
    queue_id = await h.add("/again", retry=1, retryInterval=50)
    await until(lambda: len(h.transport.sends) == 2, timeout=LEASE_MS / 1000 / 4)
    await until(lambda: state_is(h, queue_id, "ERROR"))


async def learned_lead(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Start a scheduler whose start writes take 40 ms more on its monotonic clock, and run
    one task: the lead is learned. The (task, start time) of each start written, once written."""
    shift, calls, started = [0.0], [], h.store.started

    async def slow_start(**kwargs: Any) -> int | None:
        shift[0] += 0.04
        number = await started(**kwargs)
        calls.append((kwargs["due"].id, kwargs["now"]))
        return number

    monkeypatch.setattr(h.store, "started", slow_start)
    await h.start(monotonic=lambda: time.monotonic() + shift[0])
    first = await h.add("/first")
    await until(lambda: state_is(h, first, "SUCCESS"))
    return calls


async def test_a_start_is_written_ahead_and_its_request_leaves_at_its_time(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing a start took 40 ms: the next task's start is written before its time, and its
    request leaves once its time comes (the wall clock stands still until then), not before."""
    calls = await learned_lead(h, monkeypatch)
    sent_at: list[int] = []
    send = h.transport.send

    async def timed_send(*args: Any, **kwargs: Any) -> CurlResponse:
        sent_at.append(h.clock.wall())
        return await send(*args, **kwargs)

    monkeypatch.setattr(h.transport, "send", timed_send)
    h.clock.frozen = now = h.clock.wall()
    queue_id = await h.add("/second", delay_ms=20)
    await until(lambda: (queue_id, now + 20) in calls)
    assert h.transport.sends == ["/first"]  # written, not sent: its time has not come
    h.clock.frozen = None
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert h.transport.sends == ["/first", "/second"] and sent_at[0] >= now + 20
    (attempt,) = await h.store.attempts(queue_id, limit=10, offset=0)
    assert attempt.started_at == now + 20


async def test_a_pause_within_the_lead_aborts_the_attempt_unsent(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = await learned_lead(h, monkeypatch)
    scheduler = h.scheduler
    assert scheduler is not None
    h.clock.frozen = now = h.clock.wall()
    queue_id = await h.add("/paused", delay_ms=20)
    await until(lambda: (queue_id, now + 20) in calls)
    row = await h.store.change(OWNER, queue_id, lambda _row: Change(state="PAUSED", paused_at=now))
    assert isinstance(row, QueueRow)
    scheduler.changed(queue_id, row)

    async def aborted() -> bool:
        return await h.outcomes(queue_id) == ["ABORTED"]

    await until(aborted)
    h.clock.frozen = None
    (attempt,) = await h.store.attempts(queue_id, limit=10, offset=0)
    assert attempt.outcome == "ABORTED" and attempt.finished_at >= attempt.started_at
    assert (await h.row(queue_id)).state == "PAUSED" and h.transport.sends == ["/first"]


async def test_pause_and_resume_racing_an_abort_never_run_two_attempts(h: Harness) -> None:
    scheduler = await h.start()
    h.transport.held.add("/race")
    queue_id = await h.add("/race")
    await until(lambda: h.transport.sends == ["/race"])
    for state in ("PAUSED", "RUNNING", "PAUSED", "RUNNING"):
        now = h.clock.wall()
        change = (
            Change(state=state, paused_at=now)
            if state == "PAUSED"
            else Change(state=state, paused_at=None, estimate_execution_at=now)
        )
        row = await h.store.change(OWNER, queue_id, lambda _row, c=change: c)
        assert isinstance(row, QueueRow)
        scheduler.changed(queue_id, row)
    await until(lambda: len(h.transport.sends) >= 2)
    h.transport.release("/race")
    await until(lambda: state_is(h, queue_id, "SUCCESS"))
    assert h.transport.peak["/race"] == 1
    outcomes = await h.outcomes(queue_id)
    assert outcomes[-1] == "SUCCESS" and set(outcomes[:-1]) <= {"ABORTED"}


async def test_one_owner_gets_only_its_share_of_the_slots(h: Harness) -> None:
    await h.start(max_in_flight_per_owner=2)
    paths = [f"/a{n}" for n in range(5)]
    h.transport.held.update([*paths, "/b"])
    ids = [await h.add(path) for path in paths]
    await until(lambda: len(h.transport.sends) == 2)
    other = await h.add("/b", owner=OTHER)
    await until(lambda: "/b" in h.transport.sends)
    assert sorted(h.transport.sends) == sorted([*h.transport.sends[:2], "/b"])
    for path in [*paths, "/b"]:
        h.transport.release(path)
    for queue_id in [*ids, other]:
        await until(lambda q=queue_id: state_is(h, q, "SUCCESS"))
    assert sorted(h.transport.sends) == sorted([*paths, "/b"])


async def test_stop_interrupts_open_attempts_and_frees_leases(h: Harness) -> None:
    scheduler = await h.start()
    h.transport.held.add("/stuck")
    queue_id = await h.add("/stuck")
    await until(lambda: h.transport.sends == ["/stuck"])
    assert (await h.row(queue_id)).in_flight
    await scheduler.stop(0.05)
    h.scheduler = None
    row = await h.row(queue_id)
    assert row.state == "RUNNING" and not row.in_flight
    assert await h.lease_of(queue_id) is None
    assert await h.outcomes(queue_id) == ["INTERRUPTED"]


async def test_stop_lets_an_outcome_being_written_finish(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    record, writing, go, cut = h.store.record, asyncio.Event(), asyncio.Event(), []

    async def slow(*args: Any, **kwargs: Any) -> bool:
        writing.set()
        try:
            await go.wait()
        except asyncio.CancelledError:
            cut.append(1)
            raise
        return await record(*args, **kwargs)

    monkeypatch.setattr(h.store, "record", slow)
    caplog.set_level(logging.INFO, logger=scheduler_module.__name__)
    scheduler = await h.start()
    queue_id = await h.add("/answered")
    await asyncio.wait_for(writing.wait(), 5)
    stopping = asyncio.create_task(scheduler.stop(0.0))  # no grace: the rest is cancelled
    await until(lambda: "letting 1 outcome writes finish" in caplog.text)
    go.set()
    await asyncio.wait_for(stopping, 5)
    h.scheduler = None
    assert not cut
    assert (await h.row(queue_id)).state == "SUCCESS"
    assert await h.outcomes(queue_id) == ["SUCCESS"]


async def test_attempts_kept_are_capped(h: Harness) -> None:
    await h.start(max_attempts_kept=2)
    h.transport.status["/fails"] = 503
    queue_id = await h.add("/fails", retry=3, retryInterval=1)
    await until(lambda: state_is(h, queue_id, "ERROR"))
    rows = await h.store.attempts(queue_id, limit=100, offset=0)
    assert [row.attempt for row in rows] == [3, 4]
    assert len(h.transport.sends) == 4


async def test_flow_parallelism_holds_across_processes_in_due_order(h: Harness) -> None:
    scheduler = await h.start()
    other = await h.start_other()
    paths = [f"/p{n}" for n in range(6)]
    h.transport.held.update(paths)
    flow = {"flowControl": {"key": "shared", "parallelism": 2}}
    ids = [await h.add(path, delay_ms=1 + n, **flow) for n, path in enumerate(paths)]
    await until(lambda: len(h.transport.sends) == 2)
    await scheduler.producer.claim()
    await other.producer.claim()  # a claim would lease a third here if the limit let it
    leased = [await h.lease_of(queue_id) for queue_id in ids]
    assert sum(lease is not None for lease in leased) == 2
    for n in range(len(paths)):
        h.transport.release(h.transport.sends[n])
        await until(lambda n=n: len(h.transport.sends) == min(n + 3, len(paths)))
    for queue_id in ids:
        await until(lambda q=queue_id: state_is(h, q, "SUCCESS"))
    assert h.transport.peak_in_flight == 2
    # Waiting tasks keep their due order: each free slot goes to the earliest.
    assert sorted(h.transport.sends[:2]) == paths[:2] and h.transport.sends[2:] == paths[2:]


async def test_flow_rate_spaces_the_starts(h: Harness) -> None:
    await h.start()
    flow = {"flowControl": {"key": "paced", "ratePerSecond": 5}}
    ids = [await h.add(f"/r{n}", **flow) for n in range(6)]
    for queue_id in ids:
        await until(lambda q=queue_id: state_is(h, q, "SUCCESS"))
    rows = sorted(
        [(await h.store.attempts(q, limit=1, offset=0))[0] for q in ids],
        key=lambda row: row.started_at,
    )
    # Turns are given 200 ms apart; an attempt records its start when its task gets to run,
    # up to its lateness after its turn. So the six starts span five turns, less at most
    # the first one's lateness (a single gap can look shorter when the loop is busy).
    first, last = rows[0], rows[-1]
    assert last.started_at - first.started_at >= 5 * 200 - (first.started_at - first.due_at)
    # They were due as they were added, close together: the flow's wait shows as the last
    # one's lateness (less how much later than the first it was added).
    added_later = last.due_at - min(row.due_at for row in rows)
    assert last.started_at - last.due_at >= 5 * 200 - added_later


async def test_tasks_of_other_keys_and_without_a_key_do_not_wait(h: Harness) -> None:
    await h.start()
    h.transport.held.update(["/busy0", "/busy1"])
    flow = {"flowControl": {"key": "narrow", "parallelism": 1}}
    await h.add("/busy0", **flow)
    waiting = await h.add("/busy1", delay_ms=2, **flow)
    await until(lambda: h.transport.sends == ["/busy0"])
    free = await h.add("/free")
    other_key = await h.add("/wide", flowControl={"key": "wide", "parallelism": 1})
    await until(lambda: state_is(h, free, "SUCCESS"))
    await until(lambda: state_is(h, other_key, "SUCCESS"))
    assert "/busy1" not in h.transport.sends and await h.lease_of(waiting) is None
    h.transport.release("/busy0")
    h.transport.release("/busy1")
    await until(lambda: state_is(h, waiting, "SUCCESS"))
