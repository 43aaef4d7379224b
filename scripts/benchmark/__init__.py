"""Benchmark tasks-server against baselines taken in the same run (SPEC §8, §14).

Absolute numbers on a shared two-core host mean little, so every figure is printed beside a
baseline measured on this machine in this run, and the ratio is what compares across hosts:

1. register: authenticated ``POST /v1/queues/register`` under a closed-loop load from a raw
   asyncio generator in its own process, beside a bare Starlette JSON echo route on the same
   uvicorn settings; the generator's own ceiling (against the raw target) is printed too.
2. execution: N tasks due at one instant against a raw keep-alive target, beside a plain
   pycurl ``CurlMulti`` loop sending as many requests to the same target.
3. lateness: arrival of ``X-Tasks-Queue-Id`` at the target minus ``estimateExecutionAt``, at
   rest and while 1,000 tasks a second fall due with 100,000 waiting; and a burst of N tasks
   due at one instant, all started within N / (attempts per second) + 100 ms.
4. scale: server RSS and restart-to-serving time with 1,000,000 waiting tasks, beside the
   same server on an empty database.

With ``--postgres``: register, a burst and lateness on SQLite and on 1, 2 and 3 nodes sharing
one PostgreSQL, with the cores each side used.

Load generator, server and target share the machine's cores, so each figure is a floor. Run
from the repository root: ``python -m scripts.benchmark`` (``./scripts/bench`` does).
"""
