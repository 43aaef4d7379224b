"""The real server as a subprocess, on a free port with a temp database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT_S = 30.0


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
    """`tasks-server serve` started with the given environment; stopped with SIGTERM."""

    def __init__(
        self,
        workdir: Path,
        command: list[str] | None = None,
        verify: ssl.SSLContext | bool = True,
        **env: Any,
    ) -> None:
        self.port = free_port()
        scheme = "https" if "PATH_TLS_CERT" in env else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
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
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=self.workdir, env=self.env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.output()}")
            try:
                if (
                    httpx.get(f"{self.url}/status", timeout=1, verify=self.verify).status_code
                    == 200
                ):
                    return self
            except httpx.TransportError:
                time.sleep(0.05)  # polling for readiness, not standing in for a condition
        raise TimeoutError(f"server did not start:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
