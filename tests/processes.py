"""Processes the tests start. Each leads a session of its own, so its process group holds all
it starts in turn (a cluster's workers, a shell's children); stopping it stops that whole
group, on every path: a failed start, a timeout, an exception, at the latest the session's end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.polling import eventually

GROUP_EXIT_S = 30.0  # a killed group is gone in milliseconds; bounded all the same

_running: set[subprocess.Popen[Any]] = set()


def start(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(args, **kwargs)` leading a new session, remembered until stopped."""
    process: subprocess.Popen[Any] = subprocess.Popen(args, start_new_session=True, **kwargs)
    _running.add(process)
    return process


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send `sig` to `process`; once it has exited, or after `timeout` seconds, kill what is left
    of its group, and return once nothing of it runs. Its exit status.

    Only the leader gets `sig`, as from a supervisor (docker stop): a cluster's parent stops
    its workers itself, which is part of what tests see. SIGKILL goes to the whole group at
    once: a crash takes the workers with it.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    # The group's id is the leader's pid, which the kernel keeps from reuse while any member
    # lives: it still names the group once the leader is reaped.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    code = process.wait()
    _running.discard(process)
    eventually(lambda: not members(process.pid), GROUP_EXIT_S, f"group {process.pid} ended")
    return code


def run(args: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)`, except
    that however it ends (its exit, the timeout, the test's own) its whole group is killed."""
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with start(args, **pipes, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            stop(process, signal.SIGKILL)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def stop_all() -> list[Sequence[str]]:
    """Stop every process started here and not stopped since; the commands of those that
    still ran (or left a process of their group running)."""
    left = list(_running)
    running = [process.args for process in left if process.poll() is None or members(process.pid)]
    for process in left:
        stop(process, signal.SIGKILL)
    return running


def members(group: int) -> list[int]:
    """The live (not zombie) processes of process group `group`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # it ended while we looked
                # Fields after the command name, which may hold spaces: state, ppid, pgrp, ...
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[2]) == group and fields[0] != "Z":
                    found.append(int(entry.name))
    return found
