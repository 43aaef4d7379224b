"""`tasks-server --version` and subcommand help that lists the environment each command reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks_server import __version__
from tasks_server.cli import main
from tasks_server.settings import Settings

EVERY_SETTING = [name.upper() for name in Settings.model_fields]
BACKUP_SETTINGS = [name for name in EVERY_SETTING if name.startswith("BACKUP_")]


def _listed(text: str) -> dict[str, str]:
    """The environment epilog as {NAME: default}."""
    rows = text.split("environment (also read from ./.env), with defaults:\n", 1)[1].splitlines()
    return dict(row.split(maxsplit=1) for row in rows if row.strip())


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_version_flag() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tasks_server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (run.returncode, run.stdout.strip()) == (0, f"tasks-server {__version__}")


@pytest.mark.parametrize("command", ["serve", "backup", "restore", "import-original", "version"])
def test_every_subcommand_describes_itself(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = _help(capsys, command)
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith(f"usage: tasks-server {command}")
    assert description.strip() and not description.lstrip().startswith(("options", "positional"))


def test_serve_help_lists_every_setting_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = _listed(_help(capsys, "serve"))
    assert list(listed) == EVERY_SETTING
    assert (listed["PORT"], listed["LOG"], listed["ADMIN_KEY"]) == ("9220", "true", "(unset)")


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_backup_and_restore_help_list_what_they_read(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    listed = _listed(_help(capsys, command))
    assert set(BACKUP_SETTINGS) <= set(listed)
    assert {"PATH_SQLITE", "S3_REGION", "AWS_REGION", "TZ"} <= set(listed)
    assert not {"PORT", "ADMIN_KEY", "MAX_TASKS_IN_QUEUE"} & set(listed)
    assert listed["BACKUP_METHOD_SQLITE"] == "LOCAL"
