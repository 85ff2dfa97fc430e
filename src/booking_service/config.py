"""Settings: the one typed configuration object, read from the environment and `.env`.

Over 300 lines on purpose: Settings is one list of declared fields, each with its bounds and
its description (the README's table and the compose checks read them), best read in one place.
What checks a single value, and the dev secret file, live in config_checks.py.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from booking_service.config_checks import (
    MIN_SECRET_BYTES,
    check_origins,
    check_proxies,
    check_rate_limit,
    check_storage_url,
    check_webhook_url,
    load_or_create_secret,
    long_enough,
    split_commas,
)

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
        default=10,
        ge=0,
        le=50,
        description=(
            "Retries of a transaction after a deadlock, lock-wait timeout or (on a Galera "
            "cluster) certification failure, before answering 503."
        ),
    )
    db_retry_backoff_seconds: float = Field(
        default=0.02,
        gt=0,
        le=10,
        description="Most wait before the first retry; doubled for each next one, with jitter.",
    )
    db_retry_backoff_max_seconds: float = Field(
        default=0.5, gt=0, le=60, description="Most wait before any one retry."
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

    # Rate limiting (see ratelimit.py).
    rate_limit_enabled: bool = Field(default=True, description="Turn rate limiting on or off.")
    rate_limit: str = Field(
        default="1/second",
        description=(
            "Budget per user (token subject) per endpoint on authenticated routes, in the "
            "`limits` notation: `1/second`, `100/minute`, `5/second;200/hour`."
        ),
    )
    auth_rate_limit: str = Field(
        default="10/minute",
        description=(
            "Budget per client address on `/register` and on `/login` (each its own), checked "
            "before any password is hashed; also per user on closing an account."
        ),
    )
    rate_limit_storage_url: str = Field(
        default="memory://",
        description=(
            "Where counts are kept: `memory://` (per worker process) or `redis://host:6379/0` "
            "(shared by every worker and machine)."
        ),
    )
    rate_limit_storage_timeout_seconds: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description=(
            "Most a limited request waits for Redis before it is counted in the worker's memory "
            "instead (fail open)."
        ),
    )
    rate_limit_storage_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description=(
            "After Redis failed or gave no answer in time, how long a worker counts in memory "
            "before asking Redis again."
        ),
    )
    rate_limit_key_prefix: str = Field(
        default="booking-service",
        min_length=1,
        max_length=100,
        description="Prefix of the limiter's keys, so several deployments can share a Redis.",
    )

    # Client addresses.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated proxy addresses or networks (`10.0.0.5,10.1.0.0/16`) whose "
            "`X-Forwarded-For` is believed. Empty: the socket peer is the client, always."
        ),
    )

    # Requests from browsers and untrusted clients.
    max_request_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
        description="Largest request body accepted; larger ones get 413 before being read.",
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated origins (`https://app.example.com`) allowed to call the API from "
            "a browser. Empty (the default): no CORS headers at all."
        ),
    )
    cors_allow_credentials: bool = Field(
        default=False,
        description="Let browsers send cookies/credentials cross-origin (never with `*`).",
    )

    # Booking rules.
    max_tickets_per_event: int = Field(default=1_000_000, ge=1, le=2_000_000_000)
    max_per_user_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description=(
            "Largest `max_per_user` (party size) an event may be given; lowering it never "
            "touches bookings already made."
        ),
    )
    ticket_code_secret: SecretStr | None = Field(
        default=None,
        description=(
            f"Key of the ticket codes' tags, at least {MIN_SECRET_BYTES} bytes. Unset: derived "
            "from JWT_SECRET; set it on its own so that a new JWT_SECRET keeps issued ticket "
            "codes valid. A new value voids every code issued under the old one."
        ),
    )
    status_cache_seconds: float = Field(
        default=0.2,
        ge=0,
        le=60,
        description=(
            "Most a worker's GET /status answer may lag behind changes (seconds); concurrent "
            "polls share one read. 0: every poll reads the database."
        ),
    )
    booking_group_max: int = Field(
        default=256,
        ge=1,
        le=1000,
        # BOOKING_BATCH_MAX is the name it had before: still read, so deployments carry on.
        validation_alias=AliasChoices("booking_group_max", "booking_batch_max"),
        description=(
            "Most bookings and cancels (of any events) a worker serves in one transaction, "
            "as one group (1: no grouping). BOOKING_BATCH_MAX, its former name, is still read."
        ),
    )

    # Idempotent retries: the Idempotency-Key header (services/idempotency.py).
    idempotency_key_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description=(
            "How long a key and the answer stored with it are kept; after that the key is "
            "forgotten and may be used again."
        ),
    )
    idempotency_lease_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description=(
            "How long a request may hold its key unanswered. A retry arriving meanwhile gets "
            "409; after it (the worker died mid-request) a retry takes the key over."
        ),
    )

    # Promotion webhooks: the outbox and its delivery loop (services/webhooks.py).
    webhook_url: str | None = Field(
        default=None,
        description=(
            "Where every worker posts outbox messages (`https://hooks.example.com/booking`). "
            "Unset: nothing is posted."
        ),
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            f"HMAC-SHA256 key of the signature header; at least {MIN_SECRET_BYTES} bytes, "
            "required when WEBHOOK_URL is set."
        ),
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Time allowed for one POST, connecting included."
    )
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="Pause between looks for due messages when idle."
    )
    webhook_backoff_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Wait after the first failed attempt; doubled after each, with jitter.",
    )
    webhook_backoff_max_seconds: float = Field(
        default=900.0, gt=0, le=24 * 3600, description="Longest wait between two attempts."
    )
    webhook_max_attempts: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Attempts before a message is given up (kept, marked `gave_up_at`).",
    )
    webhook_batch_size: int = Field(
        default=10, ge=1, le=500, description="Messages a worker claims and posts at once."
    )
    outbox_retention_hours: float = Field(
        default=7 * 24,
        gt=0,
        description=(
            "Delivered messages are deleted this long after delivery; with no WEBHOOK_URL, "
            "undelivered ones this long after they were written."
        ),
    )

    # Background housekeeping, in every worker.
    housekeeping_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        le=24 * 3600,
        description="How often each worker deletes expired idempotency keys and old messages.",
    )

    # Waiting-list offers (services/offers.py).
    offer_sweep_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description=(
            "How often each worker expires lapsed offers and hands their tickets on. An answer "
            "after the deadline is refused (410) whether or not a sweep has run yet."
        ),
    )

    _split_commas = field_validator("trusted_proxies", "cors_allow_origins", mode="before")(
        split_commas
    )
    _check_rate_limit = field_validator("rate_limit", "auth_rate_limit")(check_rate_limit)
    _check_storage_url = field_validator("rate_limit_storage_url")(check_storage_url)
    _check_proxies = field_validator("trusted_proxies")(check_proxies)
    _check_origins = field_validator("cors_allow_origins")(check_origins)

    # Operations: logs, readiness and shutdown.
    log_format: Literal["auto", "json", "plain"] = Field(
        default="auto",
        description="Log lines as JSON or plain text; `auto` is JSON when ENVIRONMENT=prod.",
    )
    ready_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description=(
            "How long GET /ready waits for the database before answering 503 (and for Redis "
            "before reporting it degraded)."
        ),
    )
    shutdown_timeout_seconds: int = Field(
        default=20,
        ge=1,
        le=600,
        description="On SIGTERM, how long in-flight requests may run on before they are cancelled.",
    )

    _check_webhook_url = field_validator("webhook_url")(check_webhook_url)

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ValueError(
                "CORS_ALLOW_CREDENTIALS cannot be combined with CORS_ALLOW_ORIGINS=*: any site "
                "could then make credentialed calls; list the origins explicitly"
            )
        if not self.database_url:
            self.database_url = self._database_url_from_parts()
        if self.idempotency_lease_seconds >= self.idempotency_key_ttl_seconds:
            raise ValueError(
                "IDEMPOTENCY_LEASE_SECONDS must be shorter than IDEMPOTENCY_KEY_TTL_SECONDS"
            )
        self._resolve_secrets()
        return self

    def _resolve_secrets(self) -> None:
        """Refuse secrets too short, treat empty ones as unset, and give development a JWT
        secret of its own (kept in a file) when none is set."""
        if self.webhook_url is not None:
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not long_enough(secret):
                # No default, in any environment: receivers must be able to trust the header.
                raise ValueError(
                    f"WEBHOOK_SECRET must be set to at least {MIN_SECRET_BYTES} bytes when "
                    "WEBHOOK_URL is set"
                )
        if self.ticket_code_secret is not None:
            code_secret = self.ticket_code_secret.get_secret_value()
            if not code_secret:  # set but empty, as in .env.example: unset
                self.ticket_code_secret = None
            elif not long_enough(code_secret):
                raise ValueError(f"TICKET_CODE_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.jwt_secret is not None and not self.jwt_secret.get_secret_value():
            self.jwt_secret = None
        if self.environment == "prod":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if not long_enough(secret):
                raise ValueError(
                    f"JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes when "
                    "ENVIRONMENT=prod (generate one with: python -c "
                    "'import secrets; print(secrets.token_urlsafe(48))')"
                )
        elif self.jwt_secret is None:
            self.jwt_secret = SecretStr(load_or_create_secret(self.jwt_secret_file))

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

    @property
    def ticket_code_key(self) -> bytes:
        """TICKET_CODE_SECRET, or a key of its own derived from the JWT secret (which has no
        working default in production, so neither has this)."""
        if self.ticket_code_secret is not None:
            return self.ticket_code_secret.get_secret_value().encode()
        return hmac.digest(self.secret_key.encode(), b"booking-service ticket codes", "sha256")


@lru_cache
def get_settings() -> Settings:
    return Settings()
