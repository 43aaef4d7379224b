"""The installed `tasks-server` command, as a user starts it."""

import signal
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess


def test_serve_register_read_and_wrong_key(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, LOG=1) as server, httpx.Client(base_url=server.url) as http:
        created = http.post("/v1/owners/register", json={"name": "first-owner"})
        assert created.status_code == 201
        owner = created.json()
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        read = http.get("/v1/owners/first-owner", headers=headers)
        assert read.status_code == 200 and read.json()["id"] == owner["id"]
        wrong = {**headers, "Authorization": "Bearer " + "z" * 64}
        assert http.get("/v1/owners/first-owner", headers=wrong).status_code == 401
        assert http.get("/health").json()["status"] == "ok"
    assert server.process is not None and server.process.returncode == 0
    assert (tmp_path / "db" / "tasks.db").exists()


def test_sigint_stops_cleanly_and_data_survives_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    with httpx.Client(base_url=server.url) as http:
        owner = http.post("/v1/owners/register", json={"name": "durable"}).json()
    assert server.stop(signal.SIGINT) == 0
    with ServerProcess(tmp_path) as again, httpx.Client(base_url=again.url) as http:
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        assert http.get("/v1/owners/durable", headers=headers).status_code == 200
