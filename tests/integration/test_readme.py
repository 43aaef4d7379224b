"""The README's walkthrough runs top to bottom against a real server and a real target.

The blocks marked ``<!-- walkthrough -->`` run in one bash, ``-euo pipefail``; the block marked
``<!-- walkthrough: target -->`` is the second terminal's command, started here in the
background. Only the ports change: the server and the target get free ones.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(marker: str) -> list[str]:
    pattern = rf"<!-- {re.escape(marker)} -->\n```sh\n(.*?)```"
    return re.findall(pattern, README.read_text(), flags=re.S)


def test_the_walkthrough_runs_top_to_bottom(tmp_path: Path) -> None:
    (target_command,) = blocks("walkthrough: target")
    script = "\n".join(blocks("walkthrough"))
    assert "register" in script and "replay" in script
    target_port = free_port()
    with ServerProcess(tmp_path) as server:
        ports = {"9220": str(server.port), "8000": str(target_port)}

        def local(text: str) -> str:
            return re.sub(r"\b(9220|8000)\b", lambda m: ports[m.group(1)], text)

        target = subprocess.Popen(  # from the clone's folder, as the README says
            ["bash", "-c", "exec " + local(target_command).strip()],
            cwd=README.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{target_port}/pyproject.toml", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the target did not start"
                    time.sleep(0.05)  # waiting for the target to listen
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", local(script)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            target.terminate()
            target.wait(10)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert '"state":"SUCCESS"' in out and '"statusCode":200' in out
    assert "[build-system]\n" in out  # the decoded response: pyproject.toml's first line
    assert '"outcome":"SUCCESS"' in out  # the attempts listing
    assert out.count('{"status":"Done"}') == 3  # pause, revoke, delete
