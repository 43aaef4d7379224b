"""Command line: ``tasks-server [serve|version]``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from tasks_server import __version__, logs
from tasks_server.app import create_app
from tasks_server.settings import Settings, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tasks-server",
        description="Execute HTTP requests later: after a delay or at an exact time, with retries.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the HTTP server (default)")
    serve.add_argument("--host", help="address to bind (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (env PORT, default 9220)")
    commands.add_parser("version", help="print the version")
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


def serve(settings: Settings) -> None:
    logs.configure(enabled=settings.log, tz=settings.log_tz or settings.tz)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
        ssl_certfile=settings.path_tls_cert,
        ssl_keyfile=settings.path_tls_key,
        ssl_ca_certs=settings.path_tls_ca,
    )
    server = _Server(config)
    server.run()
    if not server.started:
        sys.exit(3)


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
    serve(settings)
