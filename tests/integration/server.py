"""The real server as a subprocess, on a free port with a temp database.

It leads a process group of its own (tests/processes.py): a start that fails, a stop and the
session's end all stop it with every process it started, a cluster's workers included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests import processes
from tests.polling import eventually

# Readiness is polled, so this bound costs nothing when starts are fast; it is sized for four
# cluster workers importing the app on two cores beside other runs.
STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted by the kernel and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


class ServerProcess:
    """`tasks-server serve` (or `command`) started with the given environment; stopped with
    SIGTERM, and SIGKILL for whatever is left after `timeout`."""

    def __init__(
        self,
        workdir: Path,
        command: list[str] | None = None,
        verify: ssl.SSLContext | bool = True,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        **env: Any,
    ) -> None:
        self.port = free_port()
        scheme = "https" if "PATH_TLS_CERT" in env else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.startup_timeout = startup_timeout
        self.workdir = workdir
        self.command = command or [str(Path(sys.executable).parent / "tasks-server"), "serve"]
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "PATH_SQLITE": str(workdir / "db" / "tasks.db"),
            **{key: str(value) for key, value in env.items()},
        }
        self.log_path = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start and wait until /status answers; if it never does, stop it before raising."""
        with self.log_path.open("ab") as log:  # the server writes to its own copy
            self.process = processes.start(
                self.command, cwd=self.workdir, env=self.env, stdout=log, stderr=log
            )
        try:
            eventually(self._ready, self.startup_timeout, "server answering /status")
        except BaseException as exc:
            self.stop(signal.SIGKILL)
            exc.add_note(f"server output:\n{self.output()}")
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited {self.process.returncode} before answering")
        try:
            response = httpx.get(f"{self.url}/status", timeout=5, verify=self.verify)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop the server and every process it started (tests/processes.py); its exit status."""
        assert self.process is not None
        return processes.stop(self.process, sig, timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
