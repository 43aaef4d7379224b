"""The `tasks` client run as a subprocess against a real server and a local target."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess, free_port
from tests.polling import eventually
from tests.target import Step, Target

TASKS = str(Path(sys.executable).parent / "tasks")
UNKNOWN_ID = "01JD0000000000000000000000"
ESC_2J = "\x1b[2J"
OSC_8 = "\x1b]8;;http://x\x1b\\osc 8\x1b]8;;\x1b\\"
# A pyproject.toml-like body: Rich markup to stay text, ESC[2J and OSC 8 to be written out.
BODY = (
    f'[build-system]\nrequires = ["hatchling"]\n[/]\n[link=http://x]text[/link]\n{ESC_2J}{OSC_8}\n'
)
# What a terminal would act on: C0 but newline, DEL, C1.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@dataclass
class Env:
    server: ServerProcess
    target: Target
    config_home: Path

    def environment(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKS_")}
        env.update({"XDG_CONFIG_HOME": str(self.config_home), "TASKS_URL": self.server.url})
        return {**env, **extra}

    def run(
        self, *args: str, stdin: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKS, *args],
            env=self.environment(**extra),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("cli")
    with ServerProcess(workdir) as server, Target() as target:
        cli = Env(server, target, workdir / "config")
        registered = cli.run("owner", "register", "cli-owner", "--save")
        assert registered.returncode == 0, registered.stderr
        yield cli


def _auth(env: Env) -> dict[str, str]:
    saved = json.loads((env.config_home / "tasks-server" / "profiles.json").read_text())
    profile = saved["default"]
    return {"Authorization": f"Bearer {profile['key']}", "X-Tasks-Owner-Id": profile["ownerId"]}


def test_register_saves_a_private_profile(env: Env) -> None:
    path = env.config_home / "tasks-server" / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    profile = json.loads(path.read_text())["default"]
    assert profile["url"] == env.server.url and len(profile["key"]) == 64


def test_add_ls_watch_attempts_with_the_servers_json(env: Env) -> None:
    added = env.run("add", f"{env.target.url}/hello", "--in", "1s", "--json")
    assert added.returncode == 0, added.stderr
    task = json.loads(added.stdout)
    assert task["state"] == "RUNNING"
    assert task["estimateExecutionAt"] - task["createdAt"] >= 1000

    listed = env.run("ls", "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    assert task["id"] in [row["id"] for row in json.loads(listed.stdout)]

    watched = env.run("watch", task["id"], "--interval", "100ms")
    assert watched.returncode == 0, watched.stderr
    # The first poll may already find it done on a loaded machine: RUNNING is not required.
    lines = watched.stdout.splitlines()
    assert lines[-1] == "state SUCCESS" and lines[-2].startswith("attempt 1: SUCCESS 200")
    assert set(lines[:-2]) <= {"state RUNNING"}
    assert [hit.queue_id for hit in env.target.hits_for("/hello")] == [task["id"]]

    attempts = env.run("attempts", task["id"], "--json")
    assert attempts.returncode == 0, attempts.stderr
    direct = httpx.get(f"{env.server.url}/v1/queues/{task['id']}/attempts", headers=_auth(env))
    assert json.loads(attempts.stdout) == direct.json()
    assert [a["outcome"] for a in direct.json()] == ["SUCCESS"]

    shown = env.run("show", task["id"])
    assert shown.returncode == 0 and "SUCCESS" in shown.stdout and "ok" in shown.stdout


def test_watch_exits_1_when_the_task_ends_in_error(env: Env) -> None:
    env.target.script("/fails", Step(status=503, body=b"down"))
    added = env.run("add", f"{env.target.url}/fails", "--json", "-X", "POST", "-d", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    queue_id = json.loads(added.stdout)["id"]
    watched = env.run("watch", queue_id, "--interval", "100ms")
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "state ERROR" in watched.stdout and "attempt 1: FAILURE 503" in watched.stdout
    (hit,) = env.target.hits_for("/fails")
    assert (hit.method, json.loads(hit.body)) == ("POST", {"a": 1})


def test_show_unknown_id_exits_1_not_found(env: Env) -> None:
    shown = env.run("show", UNKNOWN_ID)
    assert (shown.returncode, shown.stdout) == (1, "")
    assert "not found" in shown.stderr


def test_a_refusal_prints_the_servers_message(env: Env) -> None:
    added = env.run("add", f"{env.target.url}/later", "--in", "1h", "--json")
    queue_id = json.loads(added.stdout)["id"]
    direct = httpx.post(f"{env.server.url}/v1/queues/{queue_id}/replay", headers=_auth(env))
    assert direct.status_code == 422
    refused = env.run("replay", queue_id, UNKNOWN_ID)
    assert refused.returncode == 1
    assert f"{queue_id}: {direct.json()['message']}" in refused.stderr
    assert f"{UNKNOWN_ID}: not found" in refused.stderr

    done = env.run("revoke", queue_id)
    assert (done.returncode, done.stdout.strip()) == (0, f"{queue_id} revoked")
    removed = env.run("rm", queue_id, "--json")
    assert (removed.returncode, json.loads(removed.stdout)) == (0, {"status": "Done"})


def test_credentials_from_the_environment_win_and_bad_ones_are_refused(env: Env) -> None:
    wrong = env.run("ls", TASKS_OWNER_ID=_auth(env)["X-Tasks-Owner-Id"], TASKS_KEY="x" * 64)
    assert wrong.returncode == 1 and "Invalid credentials" in wrong.stderr
    missing = env.run("--profile", "nobody", "ls")
    assert missing.returncode == 2 and "no profile 'nobody'" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["add", "http://127.0.0.1:1/x", "--in", "5 minutes"],
        ["add", "http://127.0.0.1:1/x", "--in", "1s", "--at", "2030-01-01T00:00:00Z"],
        ["add", "http://127.0.0.1:1/x", "--at", "tomorrow"],
        ["add", "http://127.0.0.1:1/x", "--header", "no-colon"],
        ["ls", "--state", "DONE"],
        ["ls", "--limit", "0"],
        ["watch", UNKNOWN_ID, "--interval", "soon"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(env: Env, args: list[str]) -> None:
    run = env.run(*args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == ""


def test_owner_register_with_the_admin_key_never_on_argv(tmp_path: Path) -> None:
    admin_key = "k" * 40
    with ServerProcess(tmp_path, ADMIN_KEY=admin_key) as server, Target() as target:
        cli = Env(server, target, tmp_path / "config")
        refused = cli.run("owner", "register", "no-admin-key")
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith("tasks: Access denied")
        assert "TASKS_ADMIN_KEY" in refused.stderr and "--admin-key-file" in refused.stderr
        wrong = cli.run("owner", "register", "wrong-key", TASKS_ADMIN_KEY="w" * 40)
        assert (wrong.returncode, wrong.stderr) == (1, "tasks: Access denied\n")
        on_argv = cli.run("owner", "register", "on-argv", "--admin-key", admin_key)
        assert on_argv.returncode == 2 and on_argv.stdout == ""
        assert "No such option: --admin-key" in on_argv.stderr
        created = cli.run(
            "owner", "register", "with-admin-key", "--json", TASKS_ADMIN_KEY=admin_key
        )
        assert created.returncode == 0, created.stderr
        assert set(json.loads(created.stdout)) >= {"id", "key", "signingSecret"}
        key_file = tmp_path / "admin-key"
        key_file.write_text(admin_key + "\n")
        from_file = cli.run("owner", "register", "from-file", "--admin-key-file", str(key_file))
        assert from_file.returncode == 0, from_file.stderr
        piped = cli.run("owner", "register", "from-stdin", "--admin-key-file", "-", stdin=admin_key)
        assert piped.returncode == 0, piped.stderr
        missing = cli.run("owner", "register", "no-file", "--admin-key-file", str(tmp_path / "x"))
        assert missing.returncode == 2 and "--admin-key-file" in missing.stderr
        empty = cli.run("owner", "register", "empty", "--admin-key-file", "-", stdin="\n")
        assert empty.returncode == 2 and "holds no key" in empty.stderr
        assert not (tmp_path / "config").exists()  # no --save, no file


def _read_until(fd: int, wanted: bytes, deadline: float) -> bytes:
    """What a terminal shows until `wanted` appears (or the program ends)."""
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no {wanted!r} on the terminal before the deadline: {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the program ended and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_admin_key_from_a_terminal_is_prompted_without_echo(tmp_path: Path) -> None:
    admin_key = "t" * 40
    with ServerProcess(tmp_path, ADMIN_KEY=admin_key) as server, Target() as target:
        cli = Env(server, target, tmp_path / "config")
        argv = [TASKS, "owner", "register", "from-terminal", "--admin-key-file", "-"]
        pid, fd = pty.fork()
        if pid == 0:  # the child: its own session, the pty as its terminal
            os.execve(TASKS, argv, cli.environment())
        try:
            deadline = time.monotonic() + 60
            prompt = _read_until(fd, b"admin key: ", deadline)
            os.write(fd, admin_key.encode() + b"\n")
            shown = prompt + _read_until(fd, b"shown once", deadline)
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, shown
        assert admin_key.encode() not in shown and b"owner id:" in shown


def test_watch_json_prints_the_final_task(env: Env) -> None:
    added = env.run("add", f"{env.target.url}/watched", "--json")
    queue_id = json.loads(added.stdout)["id"]
    watched = env.run("watch", queue_id, "--json", "--interval", "50ms")
    assert watched.returncode == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert (final["id"], final["state"], final["statusCode"]) == (queue_id, "SUCCESS", 200)


def test_schedules_add_ls_show_pause_resume_rm(env: Env) -> None:
    if httpx.get(f"{env.server.url}/v1/schedules", headers=_auth(env)).status_code == 404:
        pytest.skip("this server has no schedule routes yet")
    created = env.run("add", f"{env.target.url}/every", "--every", "1s", "--json")
    assert created.returncode == 0, created.stderr
    schedule = json.loads(created.stdout)
    assert (schedule["state"], schedule["cron"]) == ("ACTIVE", "*/1 * * * * *")
    env.target.wait(lambda: len(env.target.hits_for("/every")) >= 1, timeout=15)

    by_cron = env.run(
        "schedule",
        "add",
        "0 9 * * 1",
        f"{env.target.url}/weekly",
        "--timezone",
        "Europe/Paris",
        "--json",
    )
    assert by_cron.returncode == 0, by_cron.stderr
    weekly = json.loads(by_cron.stdout)
    assert (weekly["cron"], weekly["timezone"]) == ("0 9 * * 1", "Europe/Paris")

    listed = env.run("schedule", "ls", "--json")
    assert {s["id"] for s in json.loads(listed.stdout)} >= {schedule["id"], weekly["id"]}
    shown = env.run("schedule", "show", weekly["id"])
    assert shown.returncode == 0 and "Europe/Paris" in shown.stdout
    assert env.run("schedule", "pause", weekly["id"]).returncode == 0
    again = env.run("schedule", "pause", weekly["id"])  # what was asked holds: not an error
    assert again.returncode == 0 and again.stdout == f"{weekly['id']} paused\n", again.stderr
    assert env.run("schedule", "resume", weekly["id"]).returncode == 0
    still = env.run("schedule", "resume", weekly["id"], "--json")
    assert still.returncode == 0 and json.loads(still.stdout)["state"] == "ACTIVE"
    removed = env.run("schedule", "rm", schedule["id"], weekly["id"])
    assert removed.returncode == 0, removed.stderr
    gone = env.run("schedule", "show", weekly["id"])
    assert gone.returncode == 1 and "not found" in gone.stderr
    bad = env.run("schedule", "add", "not a cron", f"{env.target.url}/x")
    assert bad.returncode == 1 and bad.stderr.startswith("tasks: ")


def test_add_takes_timeout_callbacks_metadata_and_an_idempotency_key(env: Env) -> None:
    args = ["add", f"{env.target.url}/once", "--in", "1h", "--timeout", "5s"]
    args += ["--max-lateness", "2m"]
    args += ["--callback", f"{env.target.url}/ok", "--failure-callback", f"{env.target.url}/ko"]
    args += ["--metadata", "order=42", "--metadata", "team=a=b", "--idempotency-key", "k-1"]
    first = env.run(*args, "--json")
    assert first.returncode == 0, first.stderr
    task = json.loads(first.stdout)
    url = f"{env.server.url}/v1/queues/{task['id']}/config"
    config = httpx.get(url, headers=_auth(env)).json()
    assert config["config"]["timeout"] == 5_000
    assert config["config"]["maxLateness"] == 120_000
    assert config["config"]["callback"]["url"] == f"{env.target.url}/ok"
    assert config["config"]["failureCallback"]["url"] == f"{env.target.url}/ko"
    assert config["metadata"] == {"order": "42", "team": "a=b"}
    again = env.run(*args, "--json")  # the same key and request: the same task
    assert again.returncode == 0 and json.loads(again.stdout)["id"] == task["id"]
    bad = env.run("add", f"{env.target.url}/x", "--metadata", "no-equals")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    both = env.run("add", f"{env.target.url}/x", "--every", "5s", "--idempotency-key", "k")
    assert both.returncode == 2


def test_ls_orders_sorts_and_filters_by_schedule(env: Env) -> None:
    later = [
        env.run("add", f"{env.target.url}/later", "--in", f"{h}h", "--json") for h in (3, 1, 2)
    ]
    ids = [json.loads(run.stdout)["id"] for run in later]
    listed = env.run("ls", "--order", "estimateExecutionAt", "--sort", "desc", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [row["id"] for row in json.loads(listed.stdout) if row["id"] in ids]
    assert mine == [ids[0], ids[2], ids[1]]  # due in 3 h, 2 h, 1 h
    created = env.run("add", f"{env.target.url}/tick", "--every", "1s", "--json")
    schedule_id = json.loads(created.stdout)["id"]
    fired = eventually(
        lambda: json.loads(env.run("ls", "--schedule", schedule_id, "--json").stdout),
        10,
        "a task of the schedule",
    )
    assert {row["scheduleId"] for row in fired} == {schedule_id}
    assert env.run("schedule", "rm", schedule_id).returncode == 0
    bad = env.run("ls", "--order", "size")
    assert bad.returncode == 2


def test_owner_key_and_signing_secret_rotate(env: Env) -> None:
    before = _auth(env)["Authorization"]
    rotated = env.run("owner", "rotate-key", "cli-owner", "--save", "--json")
    assert rotated.returncode == 0, rotated.stderr
    key = json.loads(rotated.stdout)["key"]
    assert _auth(env)["Authorization"] == f"Bearer {key}" != before
    assert env.run("ls").returncode == 0  # the saved new key is accepted
    secret = env.run("owner", "rotate-signing-secret", "cli-owner")
    assert secret.returncode == 0 and secret.stdout.startswith("signing secret: ")
    other = env.run("owner", "rotate-key", "someone-else")
    assert other.returncode == 1 and "not found" in other.stderr


def test_every_that_no_cron_can_keep_is_a_usage_error(env: Env) -> None:
    run = env.run("add", f"{env.target.url}/x", "--every", "7s")
    assert run.returncode == 2 and "divide a minute" in run.stderr
    both = env.run("add", f"{env.target.url}/x", "--every", "5s", "--in", "1s")
    assert both.returncode == 2


def test_server_data_is_printed_as_text(env: Env) -> None:
    env.target.script("/pyproject", Step(body=BODY.encode()))
    metadata = {
        "[build-system]": f"[/] {ESC_2J} \x9b31m \x7f",
        "[b]": "[link=http://x]t[/link]\x07",
    }
    direct = httpx.post(
        f"{env.server.url}/v1/queues/register",
        json={
            "httpRequest": {"url": f"{env.target.url}/pyproject", "method": "GET"},
            "metadata": metadata,
        },
        headers=_auth(env),
    )
    assert direct.status_code == 201, direct.text
    queue_id = direct.json()["id"]
    assert env.run("watch", queue_id, "--interval", "50ms").returncode == 0

    shown = env.run("show", queue_id)
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip() for line in shown.stdout.splitlines()]
    assert {"[build-system]", 'requires = ["hatchling"]', "[/]", "[link=http://x]text[/link]"} <= {
        line.removeprefix("response").strip() for line in lines
    }
    assert "\\x1b[2J\\x1b]8;;http://x\\x1b\\osc 8\\x1b]8;;\\x1b\\" in lines
    assert "metadata.[build-system]  [/] \\x1b[2J \\x9b31m \\x7f" in lines
    assert "metadata.[b]             [link=http://x]t[/link]\\x07" in lines
    assert not CONTROL.search(shown.stdout)

    as_json = env.run("show", queue_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert (
        json.loads(as_json.stdout)
        == httpx.get(f"{env.server.url}/v1/queues/{queue_id}", headers=_auth(env)).json()
    )
    assert json.loads(as_json.stdout)["metadata"] == metadata
    assert not CONTROL.search(as_json.stdout)


def test_an_error_message_is_printed_as_text(env: Env) -> None:
    name = f"[/][link=x]t[/link]{ESC_2J}\x1b]8;;x\x07\x9b"
    refused = env.run("add", f"{env.target.url}/x", "-H", f"{name}:v")
    assert refused.returncode == 1 and refused.stdout == ""
    assert r"[/][link=x]t[/link]\x1b[2J\x1b]8;;x\x07\x9b.[key]: String should" in refused.stderr
    assert not CONTROL.search(refused.stderr)


def test_cannot_reach_prints_the_url_as_text_without_its_password(env: Env) -> None:
    where = f"127.0.0.1:{free_port()}/[link=http://x]text[/link]"
    unreachable = env.run("ls", TASKS_URL=f"http://alice:s3cret@{where}")
    assert unreachable.returncode == 1 and unreachable.stdout == ""
    assert unreachable.stderr.startswith(f"tasks: cannot reach http://***@{where}/: ")
    assert "s3cret" not in unreachable.stderr
    not_a_url = env.run("ls", TASKS_URL=f"http://127.0.0.1:1/{ESC_2J}")
    assert not_a_url.returncode == 2 and not_a_url.stdout == ""
    assert r"\x1b" in not_a_url.stderr and "Traceback" not in not_a_url.stderr
    assert not CONTROL.search(not_a_url.stderr)


def test_save_never_replaces_a_profile_silently(env: Env) -> None:
    path = env.config_home / "tasks-server" / "profiles.json"
    before = json.loads(path.read_text())
    refused = env.run("owner", "register", "save-again", "--save")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "profile 'default' exists" in refused.stderr and "--force" in refused.stderr
    assert json.loads(path.read_text()) == before

    # Nothing was registered: the name is still free, here for a profile of its own.
    named = env.run("--profile", "second", "owner", "register", "save-again", "--save", "--json")
    assert named.returncode == 0, named.stderr
    saved = json.loads(path.read_text())
    assert saved["default"] == before["default"]
    assert saved["second"]["ownerId"] == json.loads(named.stdout)["id"]

    again = env.run("--profile", "second", "owner", "register", "save-forced", "--save")
    assert again.returncode == 2 and "profile 'second' exists" in again.stderr
    forced = env.run(
        "--profile", "second", "owner", "register", "save-forced", "--save", "--force", "--json"
    )
    assert forced.returncode == 0, forced.stderr
    saved = json.loads(path.read_text())
    assert saved["second"]["ownerId"] == json.loads(forced.stdout)["id"]
    assert saved["default"] == before["default"]


def test_headers_and_data_from_files_keep_secrets_off_argv(env: Env, tmp_path: Path) -> None:
    headers = tmp_path / "headers"
    headers.write_text("Authorization: Bearer s3cret\n\nX-Trace: abc\n")
    added = env.run(
        "add",
        f"{env.target.url}/secret",
        "-H",
        f"@{headers}",
        "-d",
        "@-",
        "--json",
        stdin='{"token": "s3cret"}',
    )
    assert added.returncode == 0, added.stderr
    env.run("watch", json.loads(added.stdout)["id"], "--interval", "50ms")
    (hit,) = env.target.hits_for("/secret")
    assert (hit.headers["authorization"], hit.headers["x-trace"]) == ("Bearer s3cret", "abc")
    assert (hit.method, json.loads(hit.body)) == ("POST", {"token": "s3cret"})
    bad = env.run("add", f"{env.target.url}/x", "-H", f"@{tmp_path / 'none'}")
    assert bad.returncode == 2 and "--header" in bad.stderr


def test_a_batch_from_a_file_a_dependent_and_ls_of_the_batch(env: Env, tmp_path: Path) -> None:
    env.target.script("/first", Step(body=b'{"next": "second"}'))
    batch = {
        "tasks": [
            {"ref": "one", "httpRequest": {"url": f"{env.target.url}/first", "method": "GET"}},
            {
                "ref": "two",
                "dependsOn": [{"ref": "one"}],
                "httpRequest": {
                    "url": f"{env.target.url}/{{{{deps.one.json.next}}}}",
                    "method": "GET",
                },
            },
        ]
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch))
    made = env.run("batch", str(path))
    assert made.returncode == 0, made.stderr
    batch_id = re.search(r"batch (\w+)", made.stdout).group(1)  # type: ignore[union-attr]
    assert "WAITING" in made.stdout
    env.target.wait(lambda: bool(env.target.hits_for("/second")))

    def both_done() -> list[dict[str, str]]:
        rows = json.loads(env.run("ls", "--batch", batch_id, "--json").stdout)
        return rows if [r["state"] for r in rows] == ["SUCCESS", "SUCCESS"] else []

    first, second = eventually(both_done, 10, "the batch done")
    later = env.run("add", f"{env.target.url}/third", "--depends-on", second["id"], "--json")
    assert later.returncode == 0, later.stderr
    shown = env.run("show", second["id"])
    assert first["id"] in shown.stdout and json.loads(later.stdout)["id"] in shown.stdout
    bad = env.run("batch", "-", stdin="not json")
    assert bad.returncode == 2 and "not JSON" in bad.stderr


def test_labels_filters_bulk_and_stats(env: Env) -> None:
    url = f"{env.target.url}/labelled?token=hidden"
    added = env.run("add", url, "--method", "PUT", "--label", "env=cli", "--label", "n=1", "--json")
    assert added.returncode == 0, added.stderr
    task = json.loads(added.stdout)
    assert task["labels"] == {"env": "cli", "n": "1"}
    later = env.run("add", url, "--label", "env=cli", "--in", "1h", "--json")
    waiting = json.loads(later.stdout)["id"]
    eventually(
        lambda: json.loads(env.run("show", task["id"], "--json").stdout)["state"] == "SUCCESS",
        10,
        "the labelled task to succeed",
    )

    listed = json.loads(env.run("ls", "--label", "env:cli", "--json").stdout)
    assert {row["id"] for row in listed} == {task["id"], waiting}
    both = json.loads(env.run("ls", "--label", "env:cli", "--label", "n:1", "--json").stdout)
    assert [row["id"] for row in both] == [task["id"]]
    filters = ["--outcome", "success", "--status-code", "200", "--label", "env:cli"]
    done = env.run("ls", *filters, COLUMNS="200")
    assert done.returncode == 0 and task["id"] in done.stdout and waiting not in done.stdout
    # The table says which task is which: method, redacted target, labels.
    assert "PUT" in done.stdout and "token=***" in done.stdout and "hidden" not in done.stdout
    assert "env=cli" in done.stdout
    bad = env.run("ls", "--label", "no-colon")
    assert bad.returncode == 2 and "KEY:VALUE" in bad.stderr

    revoked = env.run("bulk", "revoke", task["id"], waiting, "--json")
    assert revoked.returncode == 0, revoked.stderr
    answer = json.loads(revoked.stdout)
    assert answer["done"] == [waiting] and [r["id"] for r in answer["refused"]] == [task["id"]]
    table = env.run("bulk", "delete", "--state", "REVOKED")
    assert table.returncode == 0 and "1 done" in table.stdout
    neither = env.run("bulk", "delete")
    assert neither.returncode == 2

    stats = env.run("stats", "--window", "15m", "--json")
    assert stats.returncode == 0, stats.stderr
    overview = json.loads(stats.stdout)
    assert sum(sum(m["outcomes"].values()) for m in overview["attemptsPerMinute"]) >= 1
    shown = env.run("stats")
    assert shown.returncode == 0 and "lateness" in shown.stdout and "SUCCESS" in shown.stdout
    assert env.run("stats", "--window", "2h").returncode == 2
