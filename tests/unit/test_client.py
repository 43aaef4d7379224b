"""The `tasks` client's pure parts: durations, the profile file, how responses are shown."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tasks_server.client import cli, output, profiles
from tasks_server.client.api import Api, Refused, Unreachable
from tasks_server.client.durations import every, parse_duration
from tasks_server.models.attempts import AttemptOutcome
from tests.integration.server import free_port

# What a server may send, and what the terminal must show for it: Rich markup stays text,
# control characters (ESC, CSI, OSC 8, BEL, DEL, C1) are written out.
HOSTILE = [
    ("[build-system]", "[build-system]"),
    ("[/]", "[/]"),
    ("[link=http://x]text[/link]", "[link=http://x]text[/link]"),
    (":warning:", ":warning:"),
    ("\x1b[2J", "\\x1b[2J"),
    ("\x1b]8;;x\x1b\\o\x1b]8;;\x1b\\", "\\x1b]8;;x\\x1b\\o\\x1b]8;;\\x1b\\"),
    ("a\x07\x7f\x9b31m\rb", "a\\x07\\x7f\\x9b31m\\x0db"),
]
# Anything a terminal would act on: C0 but newline, DEL, C1.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("5s", 5_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1h30m", 5_400_000),
        ("1.5s", 1_500),
        ("0s", 0),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5", "5 s", "s", "5x", "-5s", "5s5", "ms5"])
def test_bad_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="500ms, 5s, 5m, 2h or 1d"):
        parse_duration(text)


def test_profiles_are_written_0600_and_keep_each_other(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "tasks-server" / "profiles.json"
    one = profiles.Profile("http://127.0.0.1:1", "01JD0000000000000000000001", "a" * 64)
    two = profiles.Profile("http://127.0.0.1:2", "01JD0000000000000000000002", "b" * 64)
    profiles.save("one", one, path)
    path.chmod(0o644)  # a rewrite makes it private again
    profiles.save("two", two, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (profiles.load("one", path), profiles.load("two", path)) == (one, two)
    assert profiles.load("three", path) is None
    assert [p.name for p in path.parent.iterdir()] == ["profiles.json"]  # no temp file left


def test_profile_path_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert profiles.profiles_path() == tmp_path / "tasks-server" / "profiles.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert profiles.profiles_path() == tmp_path / ".config" / "tasks-server" / "profiles.json"


def test_a_malformed_profile_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text("[1]")
    with pytest.raises(profiles.ProfileError, match="not a JSON object"):
        profiles.load("default", path)
    path.write_text('{"default": {"url": "x"}}')
    with pytest.raises(profiles.ProfileError, match="lacks url, ownerId or key"):
        profiles.load("default", path)


def test_responses_are_shown_decoded_when_text() -> None:
    assert output.decoded(None) == "-"
    assert output.decoded(base64.b64encode(b"hello").decode()) == "hello"
    assert output.decoded(base64.b64encode(b"\xff\xfe").decode()) == "<2 bytes, not text>"
    long = output.decoded(base64.b64encode(b"x" * 1000).decode())
    assert long.endswith("… (1000 bytes)") and len(long) < 500
    assert output.when(0) == "-"
    assert output.when(1_767_225_600_123) == "2026-01-01 00:00:00.123Z"
    assert output.when(1_767_225_600_123, short=True, year=2026) == "01-01 00:00:00"
    # Another year's time says which year (a schedule's next fire, an old task).
    assert output.when(1_767_225_599_000, short=True, year=2026) == "2025-12-31 23:59:59"
    assert output.when(1_767_225_600_123, short=True, year=2027) == "2026-01-01 00:00:00"


def test_list_rows_keep_whole_ids_within_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    row = {
        "id": "01JD0000000000000000000000",
        "state": "REVOKED",
        "statusCode": 503,
        "createdAt": 1_767_225_600_123,
        "estimateExecutionAt": 1_767_225_601_000,
        "estimateEndAt": 1_767_225_602_000,
    }
    output.queues([row, row])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    assert lines[1].split() == [
        row["id"],
        "REVOKED",
        "503",
        "01-01",
        "00:00:00",
        "01-01",
        "00:00:02",
    ]
    output.queues([])
    assert capsys.readouterr().out == "no tasks\n"


@pytest.mark.parametrize(
    ("ms", "cron"),
    [
        (10_000, "*/10 * * * * *"),
        (1_000, "*/1 * * * * *"),
        (300_000, "0 */5 * * * *"),
        (7_200_000, "0 0 */2 * * *"),
        (86_400_000, "0 0 0 * * *"),
    ],
)
def test_every_as_cron(ms: int, cron: str) -> None:
    assert every(ms) == cron


@pytest.mark.parametrize("ms", [0, 500, 1_500, 7_000, 420_000, 25_200_000, 172_800_000])
def test_every_refuses_an_uneven_rhythm(ms: int) -> None:
    with pytest.raises(ValueError, match="--every"):
        every(ms)


def test_a_task_shows_its_schedule_and_callback_links(capsys: pytest.CaptureFixture[str]) -> None:
    item = {
        "id": "01JD0000000000000000000000",
        "state": "SUCCESS",
        "statusCode": 200,
        "createdAt": 1_767_225_600_123,
        "estimateExecutionAt": 1_767_225_601_000,
        "estimateEndAt": 1_767_225_602_000,
        "scheduleId": "01JF0000000000000000000000",
        "callbackQueueId": "01JG0000000000000000000000",
        "callbackOf": None,
        "response": None,
    }
    output.queue(item)
    lines = capsys.readouterr().out.splitlines()
    assert ["schedule", "01JF0000000000000000000000"] in [line.split() for line in lines]
    assert ["callback", "task", "01JG0000000000000000000000"] in [line.split() for line in lines]
    assert not any(line.startswith("callback of") for line in lines)


@pytest.mark.parametrize(("sent", "shown"), HOSTILE)
def test_literal_writes_out_control_characters(sent: str, shown: str) -> None:
    assert output.literal(sent) == shown


def test_literal_keeps_tab_and_newline_only_in_a_body_and_json_stays_json() -> None:
    assert output.literal("a\tb\nc") == "a\\x09b\\x0ac"
    assert output.literal("a\tb\r\nc\x1b", layout=True) == "a\tb\\x0d\nc\\x1b"
    sent = '{"a":"\\u001b[2J\x9b\x7f[/]"}\n'  # JSON escapes C0 itself, not DEL and C1
    shown = output.literal(sent, json=True)
    assert shown == '{"a":"\\u001b[2J\\u009b\\u007f[/]"}\n'
    assert json.loads(shown) == json.loads(sent)
    assert output.literal('"\x1b"', json=True) == '"\\u001b"'


@pytest.mark.parametrize(("sent", "shown"), HOSTILE)
def test_server_data_is_shown_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sent: str, shown: str
) -> None:
    # No cell cut: each is counted whole below (the console read COLUMNS when first made).
    monkeypatch.setattr(output.console, "width", 200)
    task = {
        "id": sent,
        "state": "SUCCESS",
        "statusCode": 200,
        "createdAt": 1_767_225_600_123,
        "estimateExecutionAt": 1_767_225_601_000,
        "estimateEndAt": 1_767_225_602_000,
        "metadata": {sent: sent},
        "response": base64.b64encode(f"{sent}\n{sent}".encode()).decode(),
    }
    output.queue(task)
    output.queues([task])
    attempt = {
        "attempt": 1,
        "outcome": "FAILURE",
        "statusCode": 502,
        "dueAt": 1_767_225_601_000,
        "latenessMs": 1,
        "durationMs": 2,
        "error": sent,
    }
    output.attempts([attempt])
    output.echo(output.attempt_line(attempt))
    schedule = {
        "id": sent,
        "state": "ACTIVE",
        "cron": sent,
        "timezone": "UTC",
        "createdAt": 1_767_225_600_123,
        "nextRunAt": 0,
        "lastRunAt": 0,
        "metadata": {sent: sent},
    }
    output.schedule(schedule)
    output.schedules([schedule])
    output.owner({"id": sent, "key": sent, "signingSecret": sent})
    output.echo(f"tasks: {sent}", err=True)
    out, err = capsys.readouterr()
    assert out.count(shown) == 17 and err == f"tasks: {shown}\n"
    assert not CONTROL.search(out)


@pytest.mark.parametrize(
    ("argv", "default"),
    [
        ([], "[default: http://127.0.0.1:9220]"),
        ([], "[default: default]"),
        (["add"], "[default: GET, or POST with --data]"),
        (["watch"], "[default: 500ms]"),
        (["schedule", "add"], "[default: UTC]"),
        (["ls"], "[default: 10; 1<=x<=1000]"),
    ],
)
def test_help_shows_the_defaults(argv: list[str], default: str) -> None:
    result = CliRunner().invoke(cli.app, [*argv, "--help"], prog_name="tasks")
    assert result.exit_code == 0, result.output
    assert default in " ".join(result.output.split())


def test_cannot_reach_hides_the_password_of_the_url() -> None:
    url = f"http://alice:s3cret@127.0.0.1:{free_port()}/[/]"
    with Api(url) as api, pytest.raises(Unreachable) as refused:
        api.queues()
    message = str(refused.value)
    assert "s3cret" not in message and "alice" not in message
    assert message.startswith(f"cannot reach http://***@{url.split('@')[1]}/: ")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (409, {"message": "Owner name 'x' is taken"}, "Owner name 'x' is taken"),
        (
            400,
            {"message": [{"path": "a.[b]", "message": "bad"}, {"path": "c", "message": "no"}]},
            "a.[b]: bad; c: no",
        ),
        (400, {"message": {"odd": ["shape"]}}, '{"odd": ["shape"]}'),
        (404, {}, "not found"),
        (502, "<html>", "HTTP 502 Bad Gateway"),
    ],
)
def test_a_refusal_carries_the_servers_message(status: int, body: object, message: str) -> None:
    """The server's answer is a stand-in here: what is tested is how its message is read."""
    answer = httpx.MockTransport(
        lambda request: httpx.Response(
            status, **({"text": body} if isinstance(body, str) else {"json": body})
        )
    )
    with Api("http://127.0.0.1:1", transport=answer) as api, pytest.raises(Refused) as refused:
        api.queues()
    assert (refused.value.status, refused.value.message) == (status, message)


def test_ls_knows_every_outcome_an_attempt_can_end_with() -> None:
    ended = {outcome.value for outcome in AttemptOutcome} - {AttemptOutcome.IN_FLIGHT.value}
    assert {outcome.value for outcome in cli.Outcome} == ended
