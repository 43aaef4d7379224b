"""The destination guard against every spelling of this host and of the metadata services,
run inside a network namespace of its own (``python -m tests.integration.netns_guard DIR``
under ``unshare --net --mount``; see test_guard_netns.py, which reads the JSON it prints).

The namespace has only ``lo``, with the addresses a refusal must be proved against added to
it (a "public" 198.51.100.7, the metadata services), a hosts file and a DNS server of its
own: nothing a case does can leave the machine, even if the guard fails. Traps listen where
no connection may arrive and count connections; two real servers run the tasks, one with the
shared-instance deny list, one with the defaults.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from .server import ServerProcess
from .targets import ServerThread
from .targets.dns import TYPE_A, answer, doh_route, question
from .targets.http import RecordingServer
from .targets.tls import Pki

PUBLIC = "198.51.100.7"  # TEST-NET-2, on lo here: an address every guard allows
METADATA = ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
SHARED_DENY = "loopback,private,link-local,metadata"
HOSTS = f"""127.0.0.1 localhost
::1 localhost
0.0.0.0 zero.test
100.100.100.200 meta.test
fd00:ec2::254 meta6.test
{PUBLIC} public.test
"""
DEADLINE_S = 60.0


def _network(workdir: Path) -> None:
    """``lo`` up with the extra addresses; this namespace's hosts file and resolver."""
    commands = [["ip", "link", "set", "lo", "up"]]
    for address in (PUBLIC, *METADATA):
        family = "-6" if ":" in address else "-4"
        prefix = 128 if ":" in address else 32
        commands.append(["ip", family, "addr", "add", f"{address}/{prefix}", "dev", "lo"])
    for command in commands:
        subprocess.run(command, check=True)
    for name, text in (("hosts", HOSTS), ("resolv.conf", "nameserver 127.0.0.1\n")):
        path = workdir / name
        path.write_text(text)
        subprocess.run(["mount", "--bind", str(path), f"/etc/{name}"], check=True)


class RebindingDns:
    """A DNS server on 127.0.0.1:53 whose first A answer for ``name`` is ``first``, and every
    later one ``then``: what a rebinding attacker's name server does."""

    def __init__(self, name: str, first: str, then: str) -> None:
        self.name, self.first, self.then = name, first, then
        self.answered = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            name, qtype, _ = question(query)
            address = self.then if self.answered else self.first
            if name == self.name and qtype == TYPE_A:
                self.answered += 1
            # Only `name` exists; AAAA questions get an empty answer.
            records = {self.name: address} if name == self.name else {}
            self.sock.sendto(answer(query, records), peer)

    def close(self) -> None:
        self.sock.close()


class Trap:
    """Listens where nothing may connect, on one port over several addresses; counts."""

    def __init__(self, thread: ServerThread, hosts: tuple[str, ...], port: int = 0) -> None:
        self.connections = 0
        self.thread = thread
        self.port = port

        async def start() -> list[asyncio.Server]:
            servers = []
            for host in hosts:
                server = await asyncio.start_server(self._accept, host, self.port)
                self.port = server.sockets[0].getsockname()[1]
                servers.append(server)
            return servers

        self.servers = thread.run(start())

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        self.thread.run(stop())


def _owner(server: ServerProcess) -> dict[str, str]:
    response = httpx.post(f"{server.url}/v1/owners/register", json={"name": "tenant"})
    response.raise_for_status()
    owner = response.json()
    return {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}


def _register(
    server: ServerProcess, headers: dict[str, str], url: str, **config: Any
) -> dict[str, Any]:
    """Register a task; wait for its end when it was accepted."""
    request = {
        "url": url,
        "method": "POST",
        "data": '{"name": "pwned"}',
        "headers": {"Content-Type": "application/json"},
    }
    body = {"httpRequest": request, "config": {"retry": 0, **config}}
    response = httpx.post(f"{server.url}/v1/queues/register", json=body, headers=headers)
    if response.status_code != 201:
        return {"status": response.status_code, "body": response.json()}
    task_id = response.json()["id"]
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.url}/v1/queues/{task_id}", headers=headers).json()
        if task["state"] != "RUNNING":
            attempts = httpx.get(f"{server.url}/v1/queues/{task_id}/attempts", headers=headers)
            errors = [attempt.get("error") for attempt in attempts.json()]
            return {"status": 201, "state": task["state"], "errors": errors}
        time.sleep(0.05)  # polling a subprocess server for the task's end
    return {"status": 201, "state": "RUNNING"}


@contextmanager
def _servers(workdir: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with ExitStack() as stack:
        guarded = ServerProcess(workdir / "guarded", DESTINATION_DENY=SHARED_DENY)
        default = ServerProcess(workdir / "default")
        for server in (guarded, default):
            server.workdir.mkdir()
            stack.enter_context(server)
        yield guarded, default


def run(workdir: Path) -> dict[str, Any]:
    _network(workdir)
    thread = ServerThread()
    pki = Pki()
    report: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.callback(thread.close)
        here = Trap(thread, ("127.0.0.1", "::1"))
        metadata = Trap(thread, METADATA)
        doh = thread.run(
            RecordingServer(
                hosts=(PUBLIC,),
                ssl_context=pki.server_context(),
                handler=doh_route({"named.test": PUBLIC}, []),
            ).start()
        )
        doh_trap = Trap(thread, ("169.254.169.254",), doh.port)
        public = thread.run(RecordingServer(hosts=(PUBLIC,)).start())
        for trap in (here, metadata, doh_trap):
            stack.callback(trap.close)
        for server in (doh, public):
            stack.callback(lambda server=server: thread.run(server.stop()))
        dns = RebindingDns("rebind.test", PUBLIC, "169.254.169.254")
        stack.callback(dns.close)
        guarded, default = stack.enter_context(_servers(workdir))
        api = guarded.port
        shared, open_ = _owner(guarded), _owner(default)
        cases: dict[str, tuple[ServerProcess, dict[str, str], str, dict[str, Any]]] = {
            "unspecified": (guarded, shared, f"http://0.0.0.0:{here.port}/x", {}),
            "zero": (guarded, shared, f"http://0:{here.port}/x", {}),
            "unspecified-v6": (guarded, shared, f"http://[::]:{here.port}/x", {"ipVersion": 6}),
            "mapped-unspecified": (guarded, shared, f"http://[::ffff:0.0.0.0]:{here.port}/x", {}),
            "nat64": (guarded, shared, f"http://[64:ff9b::7f00:1]:{here.port}/x", {}),
            "own-api": (guarded, shared, f"http://0.0.0.0:{api}/v1/owners/register", {}),
            "resolve": (
                guarded,
                shared,
                f"http://anything.test:{here.port}/x",
                {"resolve": [{"host": "anything.test", "port": here.port, "address": ["0.0.0.0"]}]},
            ),
            "hosts-entry": (guarded, shared, f"http://zero.test:{here.port}/x", {}),
            "own-api-by-name": (guarded, shared, f"http://zero.test:{api}/v1/owners/register", {}),
            "redirect": (
                guarded,
                shared,
                public.url(f"/redirect?to=http://0.0.0.0:{api}/v1/owners/register", PUBLIC),
                {},
            ),
            "metadata-v4": (default, open_, f"http://100.100.100.200:{metadata.port}/x", {}),
            "metadata-v6": (default, open_, f"http://[fd00:ec2::254]:{metadata.port}/x", {}),
            "metadata-by-name": (default, open_, f"http://meta.test:{metadata.port}/x", {}),
            "metadata-v6-by-name": (
                default,
                open_,
                f"http://meta6.test:{metadata.port}/x",
                {"ipVersion": 6},
            ),
            "doh-rebinding": (
                default,
                open_,
                public.url("/after-doh", "named.test"),
                {"dohUrl": f"https://rebind.test:{doh.port}/dns-query", "dohInsecure": True},
            ),
        }
        for name, (server, headers, url, config) in cases.items():
            report[name] = _register(server, headers, url, **config)
        again = httpx.post(f"{guarded.url}/v1/owners/register", json={"name": "pwned"})
        report["pwned-was-free"] = again.status_code == 201
        report["connections"] = {
            "this-host": here.connections,
            "metadata": metadata.connections,
            "doh-rebound": doh_trap.connections,
            "doh": len(doh.take()),
            "public": [request.path for request in public.take()],
        }
        report["dns-a-answers"] = dns.answered
    return report


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]))))
