"""The background-service base: a failed turn is logged and the loop goes on; a loop that
dies stops the process."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

from tasks_server.service import Service

log = logging.getLogger("tasks_server.test_service")


class Turns(Service):
    """Fails its first turn, then counts the others."""

    name = "turns"

    def __init__(self) -> None:
        super().__init__(log)
        self.turns = 0
        self.second = asyncio.Event()

    async def pause(self) -> None:
        await asyncio.sleep(0)

    async def run_once(self) -> int:
        self.turns += 1
        if self.turns == 1:
            raise RuntimeError("first turn broke")
        self.second.set()
        return self.turns


async def test_a_failed_turn_is_logged_and_the_next_one_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    service = Turns()
    service.start()
    try:
        async with asyncio.timeout(10):
            await service.second.wait()
    finally:
        await service.stop()
    failed = [r for r in caplog.records if r.name == log.name]
    assert [(r.levelname, r.getMessage(), r.__dict__["action"]) for r in failed] == [
        ("ERROR", "turns failed", "turns_failed")
    ]
    assert failed[0].exc_info is not None and "first turn broke" in str(failed[0].exc_info[1])
    await service.stop()  # stopping twice, or never started, is harmless
    await Turns().stop()


def test_a_loop_that_dies_stops_the_process() -> None:
    """A fault outside a turn ends the loop: the process exits 1 with a CRITICAL line rather
    than serve on without it."""
    code = textwrap.dedent(
        """
        import asyncio, logging
        from tasks_server.service import Service

        class Broken(Service):
            name = "broken"

            async def pause(self):
                raise RuntimeError("the pause broke")

        async def main():
            Broken(logging.getLogger("broken")).start()
            await asyncio.sleep(60)
            print("still serving")

        logging.basicConfig(format="%(levelname)s %(message)s")
        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "still serving" not in done.stdout
    assert "CRITICAL broken stopped: RuntimeError('the pause broke'); exiting" in done.stderr
