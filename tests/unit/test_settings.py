import subprocess
import sys

import pytest

from tasks_server.settings import BackupMethod, SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.tz) == ("127.0.0.1", 9220, "UTC")
    assert str(settings.path_sqlite) == ".database/tasks.db"
    assert settings.backup_method_sqlite is BackupMethod.LOCAL
    assert settings.max_tasks_in_queue == 1000 and settings.max_size_body_request == 32768
    assert not settings.throttle_enabled and settings.max_instances == 1


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("PORT=1234\nMAX_THROTTLE_REQUEST=10\nCIPHER_KEY=\n")
    monkeypatch.setenv("MAX_THROTTLE_TIME_WINDOW", "60000")
    monkeypatch.setenv("MAX_INSTANCES", "max")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("S3_REGION", "eu-west-1")
    settings = load_settings()
    assert settings.port == 1234 and settings.throttle_enabled
    assert settings.cipher_key is None
    assert settings.max_instances >= 1
    assert settings.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.s3_region_name == "eu-west-1" and settings.backup_tz == "UTC"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("TZ", "Mars/Olympus"),
        ("BACKUP_CRON_PATTERN_SQLITE", "every day"),
        ("BACKUP_METHOD_SQLITE", "FTP"),
        ("MAX_INSTANCES", "0"),
        ("FORWARDED_ALLOW_IPS", "not-an-ip"),
        ("MAX_SIZE_BODY_REQUEST", "-1"),
        ("LOG", "maybe"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^invalid setting {name}: "):
        load_settings()


def test_tls_cert_and_key_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH_TLS_CERT", "cert.pem")
    with pytest.raises(SettingsError, match="PATH_TLS_CERT and PATH_TLS_KEY"):
        load_settings()


def test_cli_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")
    result = subprocess.run(
        [sys.executable, "-m", "tasks_server", "serve"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tasks-server: invalid setting PORT: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_cli_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tasks_server", "version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stdout.startswith("tasks-server ")


def test_env_example_is_valid_and_complete(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """.env.example names every setting, and loading it gives the defaults."""
    from pathlib import Path

    example = Path(__file__).parents[2] / ".env.example"
    text = example.read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and line[0] != "#"}
    from tasks_server.settings import Settings

    assert names == {name.upper() for name in Settings.model_fields}
    (tmp_path / ".env").write_text(text)
    assert load_settings() == Settings(_env_file=None)  # type: ignore[call-arg]
