"""Every setting of the service, read once from the environment (and an optional `.env`)."""

from __future__ import annotations

import functools
import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tasks_server.cron import Cron
from tasks_server.executor.guard import DestinationGuard, parse_ranges
from tasks_server.timeutil import time_zone


class BackupMethod(StrEnum):
    LOCAL = "LOCAL"
    OBJECT_STORAGE = "OBJECT_STORAGE"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable."""


class Settings(BaseSettings):
    """Names and defaults are the original server's environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    host: str = "127.0.0.1"
    port: int = Field(9220, ge=0, le=65535)
    tz: str = "UTC"
    path_sqlite: Path = Path(".database/tasks.db")
    # postgresql://user:password@host:port/dbname: any number of nodes on one PostgreSQL.
    database_url: str | None = None
    # A PostgreSQL connection that takes longer to open fails (start-up then exits).
    database_connect_timeout_ms: int = Field(5000, ge=1)
    cipher_key: str | None = None
    log: bool = True
    log_tz: str | None = None
    log_format: LogFormat = LogFormat.TEXT
    cluster_mode: bool = False
    max_instances: Annotated[int, NoDecode] = 1

    backup_cron_pattern_sqlite: str = "0 0 * * *"
    backup_cron_tz_sqlite: str | None = None
    backup_method_sqlite: BackupMethod = BackupMethod.LOCAL
    backup_path_dir_sqlite: Path = Path(".backup")
    backup_object_storage_endpoint: str | None = None
    backup_object_storage_bucket_name: str | None = None
    backup_object_storage_path: str = ""
    backup_object_storage_access_key: str | None = None
    backup_object_storage_secret_key: str | None = None
    backup_retention: int = Field(0, ge=0)
    s3_region: str | None = None
    aws_region: str | None = None

    connectivity_hostname: str = ""
    connectivity_check_interval: int = Field(5000, ge=100)

    max_size_body_request: int = Field(32768, ge=1024)
    max_size_data_response: int = Field(32768, ge=1)
    max_throttle_request: int = Field(0, ge=0)
    max_throttle_time_window: int = Field(0, ge=0)
    max_tasks_in_queue: int = Field(1000, ge=1)
    max_attempts_kept: int = Field(100, ge=1)
    max_schedules: int = Field(100, ge=1)
    max_in_flight_per_owner: int = Field(250, ge=1)
    # A destination's circuit (SPEC §18.1): opened by this many failures in a row, for this
    # long at first (doubling while probes fail, to at most 10 minutes).
    circuit_failures: int = Field(10, ge=1)
    circuit_open_ms: int = Field(30_000, ge=1, le=600_000)
    retention_finished_ms: int = Field(2_592_000_000, ge=0)

    path_tls_cert: Path | None = None
    path_tls_key: Path | None = None
    path_tls_ca: Path | None = None
    swagger_ui: bool = False
    certs_dir: Path | None = None
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []
    destination_deny: str = "link-local,metadata"
    destination_allow: str | None = None

    admin_key: str | None = Field(None, min_length=32)
    key_rotation_grace_ms: int = Field(86_400_000, ge=0)
    idempotency_ttl_ms: int = Field(86_400_000, ge=1)
    # HTTP server limits (SPEC §10.7); the timeouts are settable so tests need not wait 10 s.
    max_connections: int = Field(1000, ge=1)
    http_header_timeout_ms: int = Field(10000, ge=1)
    http_body_timeout_ms: int = Field(10000, ge=1)
    # An idle keep-alive connection is closed after this: longer than clients keep theirs
    # (httpx 5 s, browsers and load balancers up to 60 s), so the client closes first and
    # never sends a request on a connection the server is closing.
    http_keep_alive_ms: int = Field(75000, ge=1)
    # OTLP/HTTP base URL: spans of registrations and attempts are exported there (SPEC §19.2).
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("max_instances", mode="before")
    @classmethod
    def _instances(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() == "MAX":
            return os.cpu_count() or 1
        return value

    @field_validator("max_instances")
    @classmethod
    def _instances_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a number ≥ 1 or MAX")
        return value

    @field_validator("tz", "log_tz", "backup_cron_tz_sqlite")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value:
            time_zone(value)
        return value

    @field_validator("backup_cron_pattern_sqlite")
    @classmethod
    def _cron(cls, value: str) -> str:
        Cron(value, seconds_first=False)  # whether it ever fires does not depend on the zone
        return value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _forwarded(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_valid(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            scheme, sep, rest = value.partition("://")
            if scheme not in ("postgresql", "postgres") or not sep or not rest:
                raise ValueError("must be a postgresql://user:password@host:port/dbname URL")
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP/HTTP)")
        return value

    @field_validator("destination_deny", "destination_allow")
    @classmethod
    def _destinations(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ranges(value)
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if (self.path_tls_cert is None) != (self.path_tls_key is None):
            raise ValueError("PATH_TLS_CERT and PATH_TLS_KEY must be set together")
        if self.database_url and not self.cipher_key:
            # Every node must seal and open the same blobs: no key file beside a database.
            raise ValueError("DATABASE_URL needs CIPHER_KEY, the same on every node")
        return self

    @property
    def host_is_loopback(self) -> bool:
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    @property
    def backup_tz(self) -> str:
        return self.backup_cron_tz_sqlite or self.tz

    @property
    def backup_cron(self) -> Cron:
        # As this setting was always read (croniter's own dialect): 6 fields end with seconds.
        return Cron(self.backup_cron_pattern_sqlite, self.backup_tz, seconds_first=False)

    @property
    def s3_region_name(self) -> str | None:
        return self.s3_region or self.aws_region

    @functools.cached_property
    def destination_guard(self) -> DestinationGuard:
        return DestinationGuard.parse(self.destination_deny, self.destination_allow)

    @property
    def throttle_enabled(self) -> bool:
        return self.max_throttle_request > 0 and self.max_throttle_time_window > 0


def load_settings(**overrides: object) -> Settings:
    """Build the settings or raise SettingsError naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            message = f"{str(error['loc'][0]).upper()}: {message}"
        raise SettingsError(f"invalid setting {message}") from None
