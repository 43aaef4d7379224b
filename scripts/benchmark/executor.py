"""The executor alone: ``N`` requests through the server's own ``Runner`` and ``CurlTransport``
in this process, ``concurrency`` at a time on uvloop as the server runs it, with no scheduler,
store or completer around them. Beside the raw CurlMulti loop it shows how much of a burst's
ratio the executor itself costs, and so the most any drain can reach on this box."""

from __future__ import annotations

import asyncio
import time

import uvloop

from scripts.benchmark.seed import new_ids
from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.options import Attempt
from tasks_server.executor.runner import Runner
from tasks_server.models.queues import QueueRegistration
from tasks_server.settings import Settings

MAX_BODY_BYTES = 1 << 20


def executor_rps(url: str, count: int, concurrency: int) -> float:
    """Requests per second of `count` GET attempts to `url` through `Runner.run`."""
    return uvloop.run(_run(url, count, concurrency))


async def _run(url: str, count: int, concurrency: int) -> float:
    reg = QueueRegistration.model_validate(
        {"httpRequest": {"url": url, "method": "GET"}}, context={"check_future": False}
    )
    transport = CurlTransport(guard=Settings(_env_file=None).destination_guard)
    runner = Runner(transport, max_body_bytes=MAX_BODY_BYTES, certs_dir=None)
    ids = iter(new_ids(count))
    failed = 0

    async def sender() -> None:
        nonlocal failed
        for queue_id in ids:
            attempt = Attempt(
                queue_id=queue_id,
                owner_id="bench",
                retry_count=0,
                retry_limit=0,
                due=0,
                timeout_ms=30_000,
                signing_secrets=(),
                sent_at_s=int(time.time()),
            )
            outcome = await runner.run(reg, attempt)
            failed += not outcome.succeeded

    begin = time.perf_counter()
    try:
        await asyncio.gather(*(sender() for _ in range(min(concurrency, count))))
    finally:
        await transport.aclose()
    elapsed = time.perf_counter() - begin
    if failed:
        print(f"  ! executor alone: {failed} requests failed")
    return count / elapsed
