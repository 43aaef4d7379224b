"""The README's walkthrough runs top to bottom against a real server and a real target.

The blocks marked ``<!-- walkthrough -->`` run in one bash, ``-euo pipefail``; the block marked
``<!-- walkthrough: target -->`` is the second terminal's command, started here in the
background. Only the ports change: the server and the target get free ones.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests import processes
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

        target = processes.start(  # from the clone's folder, as the README says
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
            run = processes.run(
                ["bash", "-euo", "pipefail", "-c", local(script)], cwd=tmp_path, timeout=60
            )
            if run.returncode == 0:
                _check_flow_tasks(server.url, run.stdout)
        finally:
            processes.stop(target, timeout=10)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert '"state":"SUCCESS"' in out and '"statusCode":200' in out
    assert "[build-system]\n" in out  # the decoded response: pyproject.toml's first line
    assert '"outcome":"SUCCESS"' in out  # the attempts listing
    assert out.count('{"status":"Done"}') == 3  # pause, revoke, delete
    ulid = "[0-9A-Z]{26}"
    fired = re.search(rf'\[\{{"id":"{ulid}","state":"SUCCESS".*?"scheduleId":"{ulid}"', out)
    assert fired, out  # a fired task of the schedule succeeded
    assert '"state":"PAUSED","cron":"*/2 * * * * *"' in out
    # The workflow: its edges, and what its second step sent, its placeholder filled.
    assert '"edges":[{"from":' in out and '"headers":{"X-Fetched":"200"}' in out


def _check_flow_tasks(url: str, out: str) -> None:
    """The walkthrough's last six lines are the flow-controlled tasks: each succeeds, and
    their attempts never overlap more than two at a time."""
    owner = json.loads(next(line for line in out.splitlines() if '"signingSecret"' in line))
    headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
    ids = re.findall(r"([0-9A-Z]{26})\n", out)[-6:]  # curl prints no newline of its own
    spans: list[tuple[int, int]] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        for queue_id in ids:
            deadline = time.monotonic() + 20
            while http.get(f"/v1/queues/{queue_id}").json()["state"] != "SUCCESS":
                assert time.monotonic() < deadline, f"{queue_id} did not succeed"
                time.sleep(0.05)  # polling the API as a user would
            (attempt,) = http.get(f"/v1/queues/{queue_id}/attempts").json()
            spans.append((attempt["startedAt"], attempt["finishedAt"]))
    most = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert most <= 2, spans
