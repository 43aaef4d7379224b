"""The ``tasks`` commands (SPEC §13.3).

Exit status: 0 done, 1 the server refused (its message is printed) or could not be reached,
2 a usage error (bad flag, bad duration, no credentials). Typer turns type hints into flags,
help and usage errors, so nothing here parses argv by hand; its Rich markup mode is off, so
help texts are printed as written (``[default: …]`` stays). Secrets never come from argv,
which any local user can read (ps, /proc): keys come from the environment, a profile, a file
or stdin, as ``psql`` (PGPASSWORD, a prompt) and ``docker login --password-stdin`` do.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tasks_server import __version__
from tasks_server.client import output, profiles
from tasks_server.client.api import Answer, Api, BadUrl, Refused, Unreachable
from tasks_server.client.durations import every, parse_duration

DEFAULT_URL = "http://127.0.0.1:9220"
FINISHED = {"SUCCESS": 0, "ERROR": 1, "REVOKED": 1}  # watch's exit status per final state
WATCH_INTERVAL_MS = 500
WATCH_PAGE = 1000  # the server keeps at most MAX_ATTEMPTS_KEPT (≤ this in practice) per task


class Order(StrEnum):
    CREATED = "createdAt"
    DUE = "estimateExecutionAt"
    ENDED = "estimateEndAt"


class Sort(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Outcome(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMEOUT = "TIMEOUT"
    TOO_LARGE = "TOO_LARGE"
    TRANSPORT = "TRANSPORT"
    UNFILLED = "UNFILLED"
    ABORTED = "ABORTED"
    INTERRUPTED = "INTERRUPTED"
    EXPIRED = "EXPIRED"


class State(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    REVOKED = "REVOKED"
    WAITING = "WAITING"


app = typer.Typer(
    name="tasks",
    help="Client of a tasks-server: register, list, follow and act on tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
schedule_app = typer.Typer(
    help="Recurring schedules: each fire time registers one task.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
owner_app = typer.Typer(
    help="Owners: register one and save its credentials.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
destination_app = typer.Typer(
    help="A destination's circuit (owner + scheme + host + port).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(owner_app, name="owner")
app.add_typer(schedule_app, name="schedule")
app.add_typer(destination_app, name="destination")


def _usage(message: str) -> NoReturn:
    output.echo(f"tasks: {message}", err=True)
    raise typer.Exit(2)


def _read_text(source: str, option: str) -> str:
    """A file's text, or stdin's for ``-``: how bodies and secrets stay off argv."""
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass
class Context:
    url: str | None
    profile: str
    profile_given: bool

    def api(self) -> Api:
        """URL, owner id and key: each from its TASKS_* variable, else from the profile."""
        saved = self.saved(required=self.profile_given)
        owner_id = os.environ.get("TASKS_OWNER_ID") or (saved.owner_id if saved else None)
        key = os.environ.get("TASKS_KEY") or (saved.key if saved else None)
        if not owner_id or not key:
            _usage(
                "no credentials: set TASKS_OWNER_ID and TASKS_KEY, or save a profile with "
                "`tasks owner register NAME --save`"
            )
        return _api(self.base_url(saved), owner_id=owner_id, key=key)

    def base_url(self, saved: profiles.Profile | None) -> str:
        return self.url or (saved.url if saved else DEFAULT_URL)

    def saved(self, *, required: bool) -> profiles.Profile | None:
        try:
            saved = profiles.load(self.profile)
        except profiles.ProfileError as exc:
            _usage(str(exc))
        if saved is None and required:
            _usage(f"no profile {self.profile!r} in {profiles.profiles_path()}")
        return saved


def _api(url: str, *, owner_id: str | None = None, key: str | None = None) -> Api:
    try:
        return Api(url, owner_id=owner_id, key=key)
    except BadUrl as exc:
        _usage(str(exc))


def _state(ctx: typer.Context) -> Context:
    return ctx.ensure_object(Context)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tasks {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(envvar="TASKS_URL", help=f"server URL [default: {DEFAULT_URL}]"),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(envvar="TASKS_PROFILE", help="saved profile to use [default: default]"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Credentials come from TASKS_URL, TASKS_OWNER_ID and TASKS_KEY, or from a profile saved
    by `tasks owner register NAME --save` (XDG_CONFIG_HOME/tasks-server/profiles.json)."""
    ctx.obj = Context(
        url=url, profile=profile or profiles.DEFAULT_PROFILE, profile_given=profile is not None
    )


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A refusal or no answer: the server's message on stderr and exit status 1."""
    try:
        yield
    except (Refused, Unreachable) as exc:
        output.echo(f"tasks: {exc}", err=True)
        raise typer.Exit(1) from None


def _print_answer(answer: Answer, as_json: bool, show: Callable[[Any], None]) -> None:
    """With --json the server's body as it came, else `show` for a person."""
    if as_json:
        output.print_json(answer.text)
    else:
        show(answer.data)


def _ask(
    ctx: typer.Context, call: Callable[[Api], Answer], as_json: bool, show: Callable[[Any], None]
) -> None:
    """One request with the profile's credentials, its answer printed."""
    with _refusals(), _state(ctx).api() as api:
        answer = call(api)
    _print_answer(answer, as_json, show)


JsonFlag = Annotated[bool, typer.Option("--json", help="print the server's JSON as it is")]


# --- owners ------------------------------------------------------------------------------


def _admin_key(source: str | None) -> str | None:
    """From --admin-key-file (``-``: stdin, or a prompt on a terminal), else TASKS_ADMIN_KEY."""
    if source is None:
        return os.environ.get("TASKS_ADMIN_KEY") or None
    if source == "-" and sys.stdin.isatty():
        return getpass.getpass("admin key: ")
    key = _read_text(source, "--admin-key-file").strip()
    if not key:
        raise typer.BadParameter(f"{source!r} holds no key", param_hint="--admin-key-file")
    return key


@owner_app.command("register")
def owner_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="5–32 lowercase letters, digits and hyphens")],
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="save the id and key (0600 file) as the profile `tasks --profile NAME` "
            "names [default: default]; if it exists, nothing is registered unless --force",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="with --save, replace the profile if it exists")
    ] = False,
    admin_key_file: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="read the server's ADMIN_KEY from FILE, or - for stdin (a prompt without "
            "echo on a terminal); without it, TASKS_ADMIN_KEY",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an owner; its key and signing secret are shown this once.

    The server's ADMIN_KEY, when it has one, comes from TASKS_ADMIN_KEY or from
    --admin-key-file, never from the command line, where other users can read it."""
    state = _state(ctx)
    saved = state.saved(required=False)
    if save and saved is not None and not force:
        _usage(
            f"profile {state.profile!r} exists in {profiles.profiles_path()}: pick another "
            "name with `tasks --profile NAME owner register …`, or add --force to replace it"
        )
    admin_key = _admin_key(admin_key_file)
    url = state.base_url(saved)
    with _refusals(), _api(url) as api:
        try:
            answer = api.register_owner(name, admin_key=admin_key)
        except Refused as exc:
            if exc.status != 403 or admin_key is not None:
                raise
            hint = "this server needs its ADMIN_KEY: set TASKS_ADMIN_KEY or use --admin-key-file"
            raise Refused(exc.status, f"{exc.message}: {hint}") from None
    _print_answer(answer, as_json, output.owner)
    if save:
        path = profiles.save(
            state.profile,
            profiles.Profile(url=url, owner_id=answer.data["id"], key=answer.data["key"]),
        )
        output.echo(f"saved as profile {state.profile!r} in {path}", err=True)


@owner_app.command("rotate-key")
def owner_rotate_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the owner's name")],
    save: Annotated[
        bool, typer.Option("--save", help="write the new key into the profile in use")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """A new key for the owner, shown this once; the old one keeps working for the server's
    grace period (KEY_ROTATION_GRACE_MS), so clients can move over."""
    state = _state(ctx)
    saved = state.saved(required=save)
    with _refusals(), state.api() as api:
        answer = api.rotate_key(name)
    _print_answer(answer, as_json, lambda data: output.echo(f"key: {data['key']}"))
    if save:
        assert saved is not None
        path = profiles.save(state.profile, replace(saved, key=answer.data["key"]))
        output.echo(f"saved in profile {state.profile!r} in {path}", err=True)


@owner_app.command("rotate-signing-secret")
def owner_rotate_signing_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the owner's name")],
    as_json: JsonFlag = False,
) -> None:
    """A new secret for the signatures of the owner's requests, shown this once; the old one
    stays valid for the server's grace period."""
    _ask(
        ctx,
        lambda api: api.rotate_signing_secret(name),
        as_json,
        lambda data: output.echo(f"signing secret: {data['signingSecret']}"),
    )


# --- tasks -------------------------------------------------------------------------------


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not NAME:VALUE", param_hint="--header")
    return name.strip(), value.strip()


def _headers(values: list[str]) -> dict[str, str]:
    """NAME:VALUE each, or @FILE (@- for stdin) with one per line: a secret stays off argv."""
    lines: list[str] = []
    for value in values:
        if value.startswith("@"):
            lines += filter(str.strip, _read_text(value[1:], "--header").splitlines())
        else:
            lines.append(value)
    return dict(_header(line) for line in lines)


def _data(text: str) -> Any:
    """JSON text or @file (@- for stdin); an object or list is sent as JSON, anything else as
    plain text."""
    if text.startswith("@"):
        text = _read_text(text[1:], "--data")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict | list) else text


def _instant(text: str) -> str:
    """ISO 8601, checked here so a typo is a usage error; the server reads the zone (or TZ)."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--at") from None
    return text


# Options `add` and `schedule add` share.
Method = Annotated[
    str | None,
    typer.Option(
        "--method", "-X", help="GET, POST, PUT, PATCH, DELETE [default: GET, or POST with --data]"
    ),
]
Data = Annotated[
    str | None,
    typer.Option(
        "--data", "-d", help="body: JSON (object or list) or text, or @FILE (@- for stdin)"
    ),
]
Headers = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        help="NAME:VALUE, repeatable; @FILE (@- for stdin) reads one per line, keeping a "
        "secret such as Authorization off the command line",
    ),
]
Retry = Annotated[
    int | None, typer.Option("--retry", min=0, help="retries after the first attempt")
]
RetryInterval = Annotated[
    int | None, typer.Option(parser=_duration, metavar="DURATION", help="wait before a retry")
]


def _request(
    url: str, method: str | None, data: str | None, headers: list[str] | None
) -> dict[str, Any]:
    """The httpRequest object (SPEC §2)."""
    request: dict[str, Any] = {"url": url, "method": method or ("POST" if data else "GET")}
    if headers:
        request["headers"] = _headers(headers)
    if data is not None:
        request["data"] = _data(data)
    return request


def _retries(retry: int | None, retry_interval: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if retry is not None:
        config["retry"] = retry
    if retry_interval is not None:
        config["retryInterval"] = retry_interval
    return config


def _pairs(values: list[str], option: str, sep: str = "=") -> dict[str, str]:
    """KEY=VALUE options (KEY:VALUE with `sep` ":") as an object."""
    pairs: dict[str, str] = {}
    for value in values:
        key, found, text = value.partition(sep)
        if not found or not key:
            _usage(f"{option} takes KEY{sep}VALUE, not {value!r}")
        pairs[key] = text
    return pairs


def _document(http_request: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return {"httpRequest": http_request, **({"config": config} if config else {})}


def _cron_every(text: str) -> str:
    try:
        return every(parse_duration(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="http or https URL the server will request")],
    method: Method = None,
    data: Data = None,
    header: Headers = None,
    in_: Annotated[
        int | None,
        typer.Option(
            "--in", parser=_duration, metavar="DURATION", help="run after 500ms, 5s, 5m, 2h, 1d"
        ),
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="run at this ISO 8601 time")] = None,
    every_: Annotated[
        str | None,
        typer.Option(
            "--every",
            parser=_cron_every,
            metavar="DURATION",
            help="a schedule instead: every 10s, 5m, 2h, 1d (dividing a minute, hour or day)",
        ),
    ] = None,
    retry: Retry = None,
    retry_interval: RetryInterval = None,
    timeout: Annotated[
        int | None,
        typer.Option(parser=_duration, metavar="DURATION", help="each attempt's time limit"),
    ] = None,
    max_lateness: Annotated[
        int | None,
        typer.Option(
            parser=_duration, metavar="DURATION", help="not sent at all when this late: EXPIRED"
        ),
    ] = None,
    callback: Annotated[
        str | None, typer.Option(metavar="URL", help="POST the outcome here when it succeeds")
    ] = None,
    failure_callback: Annotated[
        str | None, typer.Option(metavar="URL", help="POST the outcome here when it fails")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="kept with the task and its callbacks, repeatable"),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="the same key and request again register nothing new (24 h)"),
    ] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ID",
            help="wait for this task to succeed first; repeatable ({{deps.ID.body}} and the "
            "like in URL, headers and data are filled from its response)",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="searchable with `ls --label`, repeatable; stored in plain text (not encrypted)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a task: the server requests URL later, with retries (or, with --every, a
    schedule that registers one at each fire time)."""
    if sum(option is not None for option in (in_, at, every_)) > 1:
        _usage("give one of --in, --at and --every")
    http_request = _request(url, method, data, header)
    config = _retries(retry, retry_interval)
    if timeout is not None:
        config["timeout"] = timeout
    if max_lateness is not None:
        config["maxLateness"] = max_lateness
    for name, target in (("callback", callback), ("failureCallback", failure_callback)):
        if target is not None:
            config[name] = {"url": target}
    kept: dict[str, Any] = {"metadata": _pairs(metadata, "--metadata")} if metadata else {}
    if label:
        kept["labels"] = _pairs(label, "--label")
    if depends_on:
        kept["dependsOn"] = [{"id": queue_id} for queue_id in depends_on]
    if every_ is not None:
        if idempotency_key is not None or depends_on:
            _usage("--idempotency-key and --depends-on register a task, not a schedule (--every)")
        _create_schedule(ctx, {"cron": every_, **_document(http_request, config), **kept}, as_json)
        return
    if in_ is not None:
        config["executionDelay"] = in_
    if at is not None:
        config["executeAt"] = _instant(at)
    document = {**_document(http_request, config), **kept}
    _ask(
        ctx,
        lambda api: api.register(document, idempotency_key=idempotency_key),
        as_json,
        output.queue,
    )


@app.command("ls")
def list_tasks(
    ctx: typer.Context,
    state: Annotated[
        State | None, typer.Option(case_sensitive=False, help="only this state")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(metavar="ID", help="only the tasks this schedule registered")
    ] = None,
    batch: Annotated[
        str | None, typer.Option(metavar="ID", help="only the tasks of this batch")
    ] = None,
    order: Annotated[Order, typer.Option(help="the time to order by")] = Order.CREATED,
    sort: Annotated[Sort, typer.Option(help="oldest (asc) or newest (desc) first")] = Sort.ASC,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="skip this many")] = 0,
    label: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY:VALUE", help="only tasks with this label, repeatable (all)"),
    ] = None,
    outcome: Annotated[
        Outcome | None,
        typer.Option(case_sensitive=False, help="only tasks whose last attempt ended so"),
    ] = None,
    status_code: Annotated[
        int | None, typer.Option(min=0, max=999, help="only tasks with this status code")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, oldest first unless --sort desc."""
    query: dict[str, Any] = {"order": order.value, "sort": sort.value, "limit": limit}
    query["offset"] = offset
    if state is not None:
        query["state"] = state.value
    if schedule is not None:
        query["scheduleId"] = schedule
    if batch is not None:
        query["batchId"] = batch
    if label:
        query["label"] = [f"{k}:{v}" for k, v in _pairs(label, "--label", ":").items()]
    if outcome is not None:
        query["outcome"] = outcome.value
    if status_code is not None:
        query["statusCode"] = status_code
    _ask(ctx, lambda api: api.queues(query), as_json, output.queues)


@app.command("batch")
def register_batch(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE.json",
            help='{"tasks": [registrations with "ref" and "dependsOn"]}; - for stdin',
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="the same key and batch again register nothing new (24 h)"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a batch of tasks at once, all or none, with dependencies between them by ref."""
    try:
        document = json.loads(_read_text(file, "FILE.json"))
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="FILE.json") from None
    _ask(
        ctx,
        lambda api: api.register_batch(document, idempotency_key=idempotency_key),
        as_json,
        output.batch,
    )


@app.command()
def show(
    ctx: typer.Context,
    queue_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """One task with its outcome (the response decoded when it is text)."""
    _ask(ctx, lambda api: api.get(queue_id), as_json, output.queue)


@app.command()
def attempts(
    ctx: typer.Context,
    queue_id: Annotated[str, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="skip this many")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """A task's attempts, oldest first: lateness, duration, status, outcome, error."""
    _ask(
        ctx,
        lambda api: api.attempts(queue_id, limit=limit, offset=offset),
        as_json,
        output.attempts,
    )


@app.command()
def watch(
    ctx: typer.Context,
    queue_id: Annotated[str, typer.Argument(metavar="ID")],
    interval: Annotated[
        int | None,
        typer.Option(parser=_duration, metavar="DURATION", help="poll interval [default: 500ms]"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Follow a task until it finishes, printing state changes and attempts.

    Exit status 0 when it ends SUCCESS, 1 when ERROR or REVOKED (or it is deleted)."""
    last_state: str | None = None
    printed = 0
    with _refusals(), _state(ctx).api() as api:
        while True:
            answer = api.get(queue_id)
            item = answer.data
            # Read after the state: an outcome and its attempt commit together.
            for attempt in api.attempts(queue_id, limit=WATCH_PAGE).data:
                if attempt["attempt"] > printed and attempt["outcome"] != "IN_FLIGHT":
                    printed = attempt["attempt"]
                    if not as_json:
                        output.echo(output.attempt_line(attempt))
            if item["state"] != last_state:
                last_state = item["state"]
                if not as_json:
                    output.echo(f"state {last_state}")
            if last_state in FINISHED:
                if as_json:
                    output.print_json(answer.text)
                raise typer.Exit(FINISHED[last_state])
            time.sleep((interval or WATCH_INTERVAL_MS) / 1000)


def _action(action: str, done: str, summary: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        queue_ids: Annotated[list[str], typer.Argument(metavar="ID...")],
        as_json: JsonFlag = False,
    ) -> None:
        _act(ctx, action, done, queue_ids, as_json=as_json)

    command.__doc__ = summary
    return command


def _act(
    ctx: typer.Context,
    action: str,
    done: str,
    queue_ids: list[str],
    *,
    as_json: bool,
    body: dict[str, Any] | None = None,
) -> None:
    _each(
        ctx,
        queue_ids,
        lambda api, queue_id: api.act(action, queue_id, body=body),
        done,
        as_json=as_json,
    )


def _each(
    ctx: typer.Context,
    ids: list[str],
    call: Callable[[Api, str], Answer],
    done: str,
    *,
    as_json: bool,
) -> None:
    """Each id in turn; a refused one is reported and the others still go; 1 if any refused."""
    refused = False
    with _state(ctx).api() as api:
        for one in ids:
            try:
                answer = call(api, one)
            except Refused as exc:
                output.echo(f"tasks: {one}: {exc}", err=True)
                refused = True
                continue
            except Unreachable as exc:
                output.echo(f"tasks: {exc}", err=True)
                raise typer.Exit(1) from None
            if as_json:
                output.print_json(answer.text)
            else:
                output.echo(f"{one} {done}")
    if refused:
        raise typer.Exit(1)


for _name, _done, _summary in (
    ("pause", "paused", "Pause tasks (an attempt in flight is aborted)."),
    ("resume", "resumed", "Resume paused tasks."),
    ("revoke", "revoked", "Revoke tasks: they never run again."),
    ("execute", "started", "Run RUNNING tasks now instead of at their time."),
):
    app.command(_name)(_action(_name, _done, _summary))


@app.command()
def replay(
    ctx: typer.Context,
    queue_ids: Annotated[list[str], typer.Argument(metavar="ID...")],
    in_: Annotated[
        int | None,
        typer.Option("--in", parser=_duration, metavar="DURATION", help="run after this"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run finished tasks (SUCCESS, ERROR, REVOKED) again with a fresh retry budget."""
    body = {"executionDelay": in_} if in_ is not None else None
    _act(ctx, "replay", "replayed", queue_ids, as_json=as_json, body=body)


app.command("rm")(_action("delete", "deleted", "Delete tasks in any state."))


class BulkAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    REVOKE = "revoke"
    REPLAY = "replay"
    DELETE = "delete"


@app.command()
def bulk(
    ctx: typer.Context,
    action: Annotated[BulkAction, typer.Argument(case_sensitive=False, help="what to do")],
    queue_ids: Annotated[list[str] | None, typer.Argument(metavar="[ID...]")] = None,
    state: Annotated[
        State | None,
        typer.Option(case_sensitive=False, help="instead of ids: the oldest 1000 in this state"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """One action over up to 1000 tasks in one request: by id, or all in a state (replay
    the failed ones with `bulk replay --state ERROR`)."""
    if bool(queue_ids) == (state is not None):
        _usage("give either task ids or --state")
    body: dict[str, Any] = {"action": action.value}
    body.update({"state": state.value} if state is not None else {"ids": queue_ids})
    _ask(ctx, lambda api: api.bulk(body), as_json, output.bulk)


class Window(StrEnum):
    QUARTER = "15m"
    HOUR = "1h"
    SIX_HOURS = "6h"
    DAY = "24h"


@app.command()
def stats(
    ctx: typer.Context,
    window: Annotated[Window, typer.Option(help="how far back")] = Window.HOUR,
    as_json: JsonFlag = False,
) -> None:
    """The owner's overview: attempts by outcome, lateness, failing destinations, states."""
    _ask(ctx, lambda api: api.stats(window.value), as_json, output.stats)


# --- schedules (SPEC §11.1) --------------------------------------------------------------


def _create_schedule(ctx: typer.Context, body: dict[str, Any], as_json: bool) -> None:
    _ask(ctx, lambda api: api.create_schedule(body), as_json, output.schedule)


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    cron: Annotated[
        str,
        typer.Argument(
            help="5 fields, 6 with seconds first, or @hourly, @daily, @weekly, @monthly"
        ),
    ],
    url: Annotated[str, typer.Argument(help="http or https URL each fire time requests")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone the cron is read in [default: UTC]")
    ] = None,
    method: Method = None,
    data: Data = None,
    header: Headers = None,
    retry: Retry = None,
    retry_interval: RetryInterval = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a schedule that registers a task requesting URL at each fire time."""
    body = _document(_request(url, method, data, header), _retries(retry, retry_interval))
    body["cron"] = cron
    if timezone is not None:
        body["timezone"] = timezone
    _create_schedule(ctx, body, as_json)


@schedule_app.command("ls")
def schedule_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="skip this many")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List schedules, oldest first."""
    _ask(ctx, lambda api: api.schedules(limit=limit, offset=offset), as_json, output.schedules)


@schedule_app.command("show")
def schedule_show(
    ctx: typer.Context,
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """One schedule: its cron, next and last fire time, the last task it registered."""
    _ask(ctx, lambda api: api.schedule(schedule_id), as_json, output.schedule)


# A schedule already in the state an action asks for: what was asked holds, so no error.
_ASKED_STATE = {"pause": "PAUSED", "resume": "ACTIVE"}


def _on_schedule(api: Api, action: str, schedule_id: str) -> Answer:
    """The action; a pause of a paused schedule (a resume of an active one) answers with the
    schedule as it is."""
    try:
        return api.act_on_schedule(action, schedule_id)
    except Refused as exc:
        wanted = _ASKED_STATE.get(action)
        if exc.status != 422 or wanted is None:
            raise
        current = api.schedule(schedule_id)
        if not isinstance(current.data, dict) or current.data.get("state") != wanted:
            raise
        return current


def _schedule_action(action: str, done: str, summary: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        schedule_ids: Annotated[list[str], typer.Argument(metavar="ID...")],
        as_json: JsonFlag = False,
    ) -> None:
        _each(
            ctx,
            schedule_ids,
            lambda api, schedule_id: _on_schedule(api, action, schedule_id),
            done,
            as_json=as_json,
        )

    command.__doc__ = summary
    return command


for _name, _action_name, _done, _summary in (
    ("pause", "pause", "paused", "Pause schedules: no fire time registers a task."),
    ("resume", "resume", "resumed", "Resume schedules from now on (no catch-up)."),
    ("rm", "delete", "deleted", "Delete schedules (the tasks they registered stay)."),
):
    schedule_app.command(_name)(_schedule_action(_action_name, _done, _summary))


# --- destinations (SPEC §18.1) -----------------------------------------------------------


@app.command("destinations")
def destination_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="skip this many")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Destinations an attempt failed to, with their circuit: closed, open (their tasks wait,
    spending no retries) or half-open; the latest changed first."""
    _ask(
        ctx, lambda api: api.destinations(limit=limit, offset=offset), as_json, output.destinations
    )


@destination_app.command("reset")
def destination_reset(
    ctx: typer.Context,
    destination_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """Close a destination's circuit: its waiting tasks go at once."""
    _ask(
        ctx,
        lambda api: api.reset_destination(destination_id),
        as_json,
        lambda item: output.destinations([item]),
    )
