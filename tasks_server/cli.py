"""Command line: ``tasks-server [serve|backup|restore|version]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from tasks_server import __version__, logs
from tasks_server.app import create_app
from tasks_server.backup import BackupError, RestoreError, backup_now, restore
from tasks_server.metrics import MULTIPROC_DIR_ENV
from tasks_server.settings import Settings, SettingsError, load_settings
from tasks_server.store.sqlite import SqliteStore

# The settings backup and restore read besides the backup_* ones: where the database is, the
# object storage region, and logging. Names and defaults come from the Settings model.
_BACKUP_SETTINGS = ("path_sqlite", "s3_region", "aws_region", "tz", "log", "log_tz")


def _reads_backup(name: str) -> bool:
    return name.startswith("backup_") or name in _BACKUP_SETTINGS


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(empty)"
    return str(getattr(value, "value", value)) or "(empty)"


def _environment(reads: Callable[[str], bool]) -> str:
    """The help epilog: each variable the command reads, with its default."""
    rows = [
        f"  {name.upper():<36} {_default(field.default)}"
        for name, field in Settings.model_fields.items()
        if reads(name)
    ]
    return "environment (also read from ./.env), with defaults:\n" + "\n".join(rows)


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    reads: Callable[[str], bool] | None = None,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=_environment(reads) if reads else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tasks-server",
        description="Execute HTTP requests later: after a delay or at an exact time, with retries.",
        epilog="`tasks-server COMMAND --help` lists the environment variables COMMAND reads.",
    )
    parser.add_argument("--version", action="version", version=f"tasks-server {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = _command(commands, "serve", "run the HTTP server (the default)", lambda _: True)
    serve.add_argument("--host", help="address to bind (overrides HOST)")
    serve.add_argument("--port", type=int, help="port to bind (overrides PORT)")
    _command(
        commands,
        "backup",
        "take one backup now with the configured BACKUP_METHOD_SQLITE",
        _reads_backup,
    )
    restore_cmd = _command(
        commands,
        "restore",
        "restore a backup into PATH_SQLITE (only when no database is there)",
        _reads_backup,
    )
    restore_cmd.add_argument(
        "source", help="archive path, a name in BACKUP_PATH_DIR_SQLITE, or an S3 key"
    )
    restore_cmd.add_argument(
        "--force", action="store_true", help="replace an existing database, keeping it aside"
    )
    _command(commands, "version", "print the version (as --version does)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: value for name in ("host", "port") if (value := getattr(args, name, None)) is not None
    }
    return load_settings(**overrides)


class _Server(uvicorn.Server):
    """Exits with status 0 after a graceful shutdown started by SIGTERM or SIGINT.

    Uvicorn re-raises the caught signal once shut down, which would make a clean stop look
    like a crash to supervisors and tests.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def _raise_file_limit() -> None:
    """Up to a thousand attempts in flight need a socket each: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# How uvicorn runs the app, whatever the settings (scripts/bench serves its baseline this way).
UVICORN_OPTIONS: dict[str, Any] = {
    "lifespan": "on",
    "loop": "uvloop",
    "http": "httptools",
    "log_config": None,
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
}


def serve(settings: Settings) -> None:
    """One process, or with CLUSTER_MODE=1 MAX_INSTANCES worker processes on one socket."""
    logs.configure(enabled=settings.log, tz=settings.log_tz or settings.tz)
    _raise_file_limit()
    options: dict[str, Any] = {
        **UVICORN_OPTIONS,
        "host": settings.host,
        "port": settings.port,
        "timeout_graceful_shutdown": 30,
        "ssl_certfile": settings.path_tls_cert,
        "ssl_keyfile": settings.path_tls_key,
        "ssl_ca_certs": settings.path_tls_ca,
    }
    workers = settings.max_instances if settings.cluster_mode else 1
    if workers > 1:
        # Workers share the database; leases left by a previous run are cleared once, here.
        asyncio.run(_release_leases(settings))
        config = uvicorn.Config(
            "tasks_server.app:create_app_from_env", factory=True, workers=workers, **options
        )
        with tempfile.TemporaryDirectory(prefix="tasks-server-metrics-") as metrics_dir:
            # Workers keep their metrics in files here, so any of them can answer a scrape.
            os.environ[MULTIPROC_DIR_ENV] = metrics_dir
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = _Server(uvicorn.Config(create_app(settings), **options))
    server.run()
    if not server.started:
        sys.exit(3)


async def _release_leases(settings: Settings) -> None:
    store = SqliteStore(settings.path_sqlite)
    await store.open()
    try:
        await store.release_all()
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"tasks-server {__version__}")
        return
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"tasks-server: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.command == "backup":
        _backup(settings)
    elif args.command == "restore":
        _restore(settings, args.source, force=args.force)
    else:
        serve(settings)


def _backup(settings: Settings) -> None:
    logs.configure(enabled=settings.log, tz=settings.log_tz or settings.tz)
    try:
        print(backup_now(settings))
    except BackupError as exc:
        print(f"tasks-server: {exc}", file=sys.stderr)
        sys.exit(1)


def _restore(settings: Settings, source: str, *, force: bool) -> None:
    logs.configure(enabled=settings.log, tz=settings.log_tz or settings.tz)
    try:
        print(f"restored {source} into {restore(settings, source, force=force)}")
    except RestoreError as exc:
        print(f"tasks-server: {exc}", file=sys.stderr)
        sys.exit(1)
