"""The bare baseline: a Starlette app with one JSON echo route, served by uvicorn with the
options ``tasks-server serve`` uses, in its own process
(``python -m scripts.benchmark.bare PORT``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import orjson

from scripts.benchmark.processes import HOST, Processes, free_port, helper


def main(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tasks_server.cli import UVICORN_OPTIONS

    async def echo(request: Request) -> Response:
        document = orjson.loads(await request.body())
        return Response(orjson.dumps(document), 201, media_type="application/json")

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, **UVICORN_OPTIONS)).run()


def start_bare(procs: Processes) -> tuple[subprocess.Popen[bytes], int]:
    """The bare baseline on a free port, once it accepts connections; and that port."""
    port = free_port()
    proc = procs.start(helper("bare", str(port)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bare baseline server exited")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return proc, port
        time.sleep(0.02)
    raise TimeoutError("the bare baseline server did not start")


if __name__ == "__main__":
    main(int(sys.argv[1]))
