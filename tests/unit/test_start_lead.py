"""StartLead: the recent peak of the start writes' latency, halving when none as high came."""

from __future__ import annotations

from tasks_server.scheduler.lead import HALF_LIFE_S, MAX_LEAD_MS, StartLead


class Writes:
    """Start writes on a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.lead = StartLead(lambda: self.now)

    async def write(self, took_ms: float) -> None:
        async def done() -> None:
            self.now += took_ms / 1000

        await self.lead.timed(done())


async def test_it_starts_at_nothing_and_takes_a_writes_latency() -> None:
    writes = Writes()
    assert writes.lead.ms() == 0
    await writes.write(12.2)
    assert writes.lead.ms() == 13  # rounded up: the request must not wait on the write


async def test_a_peak_halves_each_half_life_unless_a_higher_write_comes() -> None:
    writes = Writes()  # latencies that binary floats hold exactly
    await writes.write(31.25)
    await writes.write(7.8125)  # lower: the peak stays
    assert writes.lead.ms() == 32
    writes.now += HALF_LIFE_S
    assert writes.lead.ms() == 16
    await writes.write(23.4375)  # higher than the peak decayed so far: the new peak
    assert writes.lead.ms() == 24
    writes.now += 2 * HALF_LIFE_S
    assert writes.lead.ms() == 6


async def test_it_never_passes_its_cap() -> None:
    writes = Writes()
    await writes.write(10 * MAX_LEAD_MS)  # a burst's write, queued behind thousands
    assert writes.lead.ms() == MAX_LEAD_MS
