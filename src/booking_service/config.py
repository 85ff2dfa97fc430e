"""Settings: the one typed configuration object, read from the environment and `.env`."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

MIN_SECRET_BYTES = 32
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./booking.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    environment: Literal["dev", "prod"] = Field(
        default="dev",
        description="`dev` allows a generated JWT secret; `prod` demands a real one.",
    )

    # Database. DATABASE_URL wins; else the original service's DB_* variables; else SQLite.
    database_url: str = Field(default="", description="SQLAlchemy async URL.")
    db_host: str | None = None
    db_port: int = 3306
    db_user: str | None = None
    db_pass: SecretStr | None = None
    db_name: str | None = None
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    db_pool_recycle_seconds: int = Field(default=1800, ge=1)
    db_lock_retries: int = Field(
        default=5, ge=0, le=50, description="Retries of a transaction after a deadlock/lock wait."
    )

    # Auth.
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path = Field(
        default=Path(".jwt-secret"),
        description="Dev mode only: where a generated secret is kept so tokens survive restarts.",
    )
    jwt_expire_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    jwt_issuer: str = "booking-service"
    password_hash_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024, le=1024 * 1024)
    password_hash_time_cost: int = Field(default=2, ge=1, le=20)
    password_hash_concurrency: int = Field(
        default=4, ge=1, le=64, description="Hashes computed at once; each takes the memory above."
    )
    auth_user_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a worker trusts that a token's user still exists (0: always ask).",
    )

    # Rate limiting (slowapi).
    rate_limit_enabled: bool = True
    rate_limit: str = "1/second"
    rate_limit_storage_url: str = "memory://"

    # Booking rules.
    max_tickets_per_event: int = Field(default=1_000_000, ge=1, le=2_000_000_000)

    # Operations: logs, readiness and shutdown.
    log_format: Literal["auto", "json", "plain"] = Field(
        default="auto",
        description="Log lines as JSON or plain text; `auto` is JSON when ENVIRONMENT=prod.",
    )
    ready_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="How long GET /ready waits for the database (and Redis) before answering 503.",
    )
    shutdown_timeout_seconds: int = Field(
        default=20,
        ge=1,
        le=600,
        description="On SIGTERM, how long in-flight requests may run on before they are cancelled.",
    )

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if not self.database_url:
            self.database_url = self._database_url_from_parts()
        if self.jwt_secret is not None and not self.jwt_secret.get_secret_value():
            self.jwt_secret = None
        if self.environment == "prod":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes when "
                    "ENVIRONMENT=prod (generate one with: python -c "
                    "'import secrets; print(secrets.token_urlsafe(48))')"
                )
        elif self.jwt_secret is None:
            self.jwt_secret = SecretStr(load_or_create_secret(self.jwt_secret_file))
        return self

    def _database_url_from_parts(self) -> str:
        if not (self.db_host and self.db_user and self.db_name):
            return DEFAULT_DATABASE_URL
        url = URL.create(
            "mysql+asyncmy",
            username=self.db_user,
            password=self.db_pass.get_secret_value() if self.db_pass else None,
            host=self.db_host,
            port=self.db_port,
            database=self.db_name,
            query={"charset": "utf8mb4"},
        )
        return url.render_as_string(hide_password=False)

    @property
    def secret_key(self) -> str:
        assert self.jwt_secret is not None  # resolved by the validator above
        return self.jwt_secret.get_secret_value()

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.environment == "prod"
        return self.log_format == "json"

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def load_or_create_secret(path: Path) -> str:
    """Return the dev secret kept at `path`, creating it once.

    Several workers may start at the same moment: the secret is written to a temporary file
    and hard-linked into place, which fails if another process won, so all agree on one value.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        with contextlib.suppress(FileExistsError):  # another process won: use its secret
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


@lru_cache
def get_settings() -> Settings:
    return Settings()
