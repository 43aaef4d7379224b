"""Command line: ``tasks-server [serve|backup|restore|migrate|import-original|version]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from tasks_server import __version__, gc_policy, logs, startup
from tasks_server.app import create_app
from tasks_server.backup import BackupError, RestoreError, backup_now, remove_leftovers, restore
from tasks_server.httpserver import HttpLimits, protocol_for
from tasks_server.metrics import MULTIPROC_DIR_ENV
from tasks_server.settings import Settings, SettingsError, load_settings
from tasks_server.store import build_store
from tasks_server.store.base import StoreOpenError

log = logging.getLogger(__name__)

# The settings backup and restore read besides the backup_* ones: where the database is, the
# object storage region, and logging. Names and defaults come from the Settings model.
_BACKUP_SETTINGS = ("path_sqlite", "s3_region", "aws_region", "tz", "log", "log_tz")


# What import-original reads besides the database and destination settings: its requests
# are checked as registrations are.
_IMPORT_SETTINGS = ("path_sqlite", "cipher_key", "certs_dir", "tz", "log", "log_tz", "log_format")


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
    _command(
        commands,
        "migrate",
        "bring the PostgreSQL database at DATABASE_URL to this server's schema",
        lambda name: (
            name in ("database_url", "database_connect_timeout_ms", "log", "log_tz", "log_format")
        ),
    )
    imports = _command(
        commands,
        "import-original",
        "import the owners and tasks of the original Bun tasks-server's SQLite database",
        lambda name: name in _IMPORT_SETTINGS or name.startswith(("database_", "destination_")),
    )
    imports.add_argument(
        "--from", dest="source", metavar="PATH", required=True, help="the original's database"
    )
    imports.add_argument(
        "--cipher-key",
        metavar="KEY",
        help="the original's CIPHER_KEY (default: CIPHER_KEY, as this server's)",
    )
    imports.add_argument("--dry-run", action="store_true", help="report, change nothing")
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


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of the cluster workers, except for a worker that ends before it
    ever served: uvicorn starts it again forever (or, for its own start-up failure status,
    stops with exit status 0), though it would fail the same way each time (a TLS file it
    cannot load, a database gone since the parent's checks). Here every worker is stopped
    and `failed` holds that worker's pid and exit code."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.failed: tuple[int | None, int] | None = None
        self._served: set[int | None] = set()

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for process in self.processes:
            if process.pid in self._served:
                continue
            if process.exitcode is not None:
                self.failed = (process.pid, process.exitcode)
                self.should_exit.set()
                return
            if process.is_ready(timeout=1):
                self._served.add(process.pid)
                log.info(
                    "worker process %s is serving", process.pid, extra={"action": "worker_serving"}
                )
        super().keep_subprocess_alive()


def _raise_file_limit() -> None:
    """Up to a thousand attempts in flight need a socket each: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# How uvicorn runs the app, whatever the settings (scripts/bench serves its baseline this way).
UVICORN_OPTIONS: dict[str, Any] = {
    "lifespan": "on",
    "loop": "uvloop",
    # httptools with the header, timeout and connection limits of SPEC §10.7.
    "http": protocol_for(HttpLimits()),
    "log_config": None,
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
}


def serve(settings: Settings) -> None:
    """One process, or with CLUSTER_MODE=1 MAX_INSTANCES worker processes on one socket.

    The database and key checks run here, before uvicorn starts: a failure is one line and
    exit status 2, not a traceback from the app's lifespan (in every worker).
    """
    logs.configure_from(settings)
    _raise_file_limit()
    startup.prepare(settings)
    remove_leftovers(settings)
    limits = HttpLimits(
        header_timeout_s=settings.http_header_timeout_ms / 1000,
        body_timeout_s=settings.http_body_timeout_ms / 1000,
        max_connections=settings.max_connections,
    )
    options: dict[str, Any] = {
        **UVICORN_OPTIONS,
        "http": protocol_for(limits),
        "host": settings.host,
        "port": settings.port,
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": settings.http_keep_alive_ms / 1000,
        "ssl_certfile": settings.path_tls_cert,
        "ssl_keyfile": settings.path_tls_key,
        "ssl_ca_certs": settings.path_tls_ca,
    }
    workers = settings.max_instances if settings.cluster_mode else 1
    if workers > 1:
        # Workers share the database; leases left by a previous run are cleared once, here
        # (on PostgreSQL other nodes may hold them: they expire instead).
        asyncio.run(_release_leases(settings))
        config = uvicorn.Config(
            "tasks_server.app:create_app_from_env", factory=True, workers=workers, **options
        )
        with tempfile.TemporaryDirectory(prefix="tasks-server-metrics-") as metrics_dir:
            # Workers keep their metrics in files here, so any of them can answer a scrape.
            os.environ[MULTIPROC_DIR_ENV] = metrics_dir
            supervisor = _Supervisor(config, sockets=[config.bind_socket()])
            supervisor.run()
        if supervisor.failed is not None:
            pid, code = supervisor.failed
            ended = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            _fail(
                f"worker process {pid} stopped before it served ({ended}); its output above "
                "says why",
                code if code > 0 else 1,
            )
        return
    server = _Server(uvicorn.Config(create_app(settings), **options))
    gc_policy.tune_for_serving()
    server.run()
    if not server.started:
        sys.exit(3)


async def _release_leases(settings: Settings) -> None:
    store = build_store(settings)
    if store.shared:  # other machines' leases: they only ever expire
        return
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
        if args.command == "backup":
            _backup(settings)
        elif args.command == "migrate":
            _migrate(settings)
        elif args.command == "restore":
            _restore(settings, args.source, force=args.force)
        elif args.command == "import-original":
            _import_original(settings, args)
        else:
            serve(settings)
    except (SettingsError, startup.StartupError) as exc:
        _fail(exc, 2)


def _fail(problem: object, status: int) -> NoReturn:
    print(f"tasks-server: {problem}", file=sys.stderr)
    sys.exit(status)


def _migrate(settings: Settings) -> None:
    if not settings.database_url:
        print(
            "tasks-server: migrate needs DATABASE_URL (SQLite migrates at start)", file=sys.stderr
        )
        sys.exit(2)
    from tasks_server.store import migrate

    logs.configure_from(settings)
    try:
        version = asyncio.run(migrate(settings))
    except StoreOpenError as exc:
        _fail(exc, 2)
    print(f"schema version {version}")


def _backup(settings: Settings) -> None:
    if settings.database_url:
        print(
            "tasks-server: on PostgreSQL, back up with PostgreSQL's own tools: pg_dump for a "
            "logical copy, or base backups with WAL archiving (pg_basebackup) for point-in-time "
            "recovery",
            file=sys.stderr,
        )
        sys.exit(2)
    logs.configure_from(settings)
    try:
        print(backup_now(settings))
    except BackupError as exc:
        _fail(exc, 1)


def _restore(settings: Settings, source: str, *, force: bool) -> None:
    logs.configure_from(settings)
    try:
        print(f"restored {source} into {restore(settings, source, force=force)}")
    except RestoreError as exc:
        _fail(exc, 1)


def _import_original(settings: Settings, args: argparse.Namespace) -> None:
    from tasks_server.original import importer

    logs.configure_from(settings)
    try:
        summary = asyncio.run(
            importer.run(settings, Path(args.source), args.cipher_key, dry_run=args.dry_run)
        )
    except importer.ImportFailed as exc:
        _fail(exc, 2)
    print("\n".join(summary.lines()))
