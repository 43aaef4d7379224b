"""The harness stops every process a test starts, with all the processes those start, on
every path: a server that never answers, one that exits early, a stop, a command's timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import processes
from tests.integration.server import ServerProcess
from tests.polling import eventually

# Forks a child that sleeps (a cluster's worker, say) and writes its pid to child.pid.
FORK = """
import os, pathlib, sys, time
child = os.fork()
if child == 0:
    time.sleep(600)
    sys.exit()
pathlib.Path("child.pid").write_text(str(child))
"""
NEVER_READY = FORK + "time.sleep(600)\n"
EXITS_EARLY = FORK + "sys.exit(1)\n"
SERVES = (
    FORK
    + """
import http.server
class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Status).serve_forever()
"""
)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent (or init) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[int]]:
    """The pids a test's process tree had; killed here if the harness left any running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def script_server(workdir: Path, script: str) -> ServerProcess:
    return ServerProcess(workdir, command=[sys.executable, "-c", script], startup_timeout=2)


def tree(server: ServerProcess, started: list[int]) -> list[int]:
    """The script's pid and its child's: the child may not have forked yet if the start-up
    timeout came first, and then there is none to outlive the test."""
    assert server.process is not None
    child = server.workdir / "child.pid"
    started += [server.process.pid, *([int(child.read_text())] if child.exists() else [])]
    return started


def test_a_server_that_never_answers_is_stopped_with_its_children(
    tmp_path: Path, started: list[int]
) -> None:
    server = script_server(tmp_path, NEVER_READY)
    with pytest.raises(AssertionError, match="server answering /status: not within 2 s"):
        server.start()
    assert [pid for pid in tree(server, started) if alive(pid)] == []


def test_a_server_that_exits_early_leaves_no_child_behind(
    tmp_path: Path, started: list[int]
) -> None:
    server = script_server(tmp_path, EXITS_EARLY)
    with pytest.raises(RuntimeError, match="server exited 1 before answering"):
        server.start()
    assert [pid for pid in tree(server, started) if alive(pid)] == []


def test_stop_ends_the_processes_the_server_started(tmp_path: Path, started: list[int]) -> None:
    server = script_server(tmp_path, SERVES).start()
    pids = tree(server, started)
    assert all(alive(pid) for pid in pids)
    assert server.stop() == -signal.SIGTERM  # the script's parent dies of it, the child not
    assert [pid for pid in pids if alive(pid)] == []


def test_a_command_that_times_out_is_killed_with_its_children(
    tmp_path: Path, started: list[int]
) -> None:
    command = ["bash", "-c", "sleep 600 & echo $! > child.pid; wait"]
    with pytest.raises(subprocess.TimeoutExpired):
        processes.run(command, timeout=1, cwd=tmp_path)
    started.append(int((tmp_path / "child.pid").read_text()))
    assert not alive(started[0])


def test_a_command_leaves_nothing_running_when_it_exits(started: list[int]) -> None:
    done = processes.run(["bash", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], timeout=30)
    assert done.returncode == 0
    started.append(int(done.stdout))
    assert not alive(started[0])


def test_eventually_returns_the_first_true_answer_or_says_what_it_waited_for() -> None:
    answers = iter([0, "", "ready"])
    assert eventually(lambda: next(answers), 10, "ready", interval=0) == "ready"
    with pytest.raises(AssertionError, match=r"a miracle: not within 0 s \(last: None\)"):
        eventually(lambda: None, 0, "a miracle")
