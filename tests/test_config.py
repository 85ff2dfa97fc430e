"""Settings: database URL resolution, secret handling in dev and prod."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from booking_service.config import DEFAULT_DATABASE_URL, Settings
from booking_service.config_checks import load_or_create_secret

SECRET = "s" * 32


def test_defaults_to_an_embedded_sqlite_file(workdir: Path) -> None:
    settings = Settings(_env_file=None, jwt_secret=SECRET)
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.environment == "dev"
    assert settings.rate_limit == "1/second"
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_storage_url == "memory://"
    assert settings.auth_rate_limit == "10/minute"
    assert settings.trusted_proxies == []
    assert settings.cors_allow_origins == []
    assert settings.max_request_body_bytes == 64 * 1024


def test_builds_a_mysql_url_from_the_original_db_variables(workdir: Path) -> None:
    settings = Settings(
        _env_file=None,
        jwt_secret=SECRET,
        db_host="db.internal",
        db_user="booker",
        db_pass="p@ss:w/rd",
        db_name="tickets",
        db_port=3307,
    )
    url = make_url(settings.database_url)
    assert url.drivername == "mysql+asyncmy"
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        3307,
        "tickets",
        "booker",
    )
    assert url.password == "p@ss:w/rd"  # escaped in the URL, intact once parsed
    assert url.query["charset"] == "utf8mb4"
    assert not settings.is_sqlite


def test_database_url_wins_over_db_variables(workdir: Path) -> None:
    settings = Settings(
        _env_file=None,
        jwt_secret=SECRET,
        database_url="mysql+asyncmy://a@b/c",
        db_host="ignored",
        db_user="ignored",
        db_name="ignored",
    )
    assert settings.database_url == "mysql+asyncmy://a@b/c"


def test_reads_the_original_services_dotenv(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "JWT_SECRET=" + SECRET + "\nDB_HOST=127.0.0.1\nDB_USER=root\nDB_PASS=\nDB_NAME=tickets\n"
    )
    settings = Settings()
    assert settings.secret_key == SECRET
    assert make_url(settings.database_url).database == "tickets"


@pytest.mark.parametrize("secret", [None, "", "short", "x" * 31])
def test_prod_refuses_a_missing_or_short_secret(workdir: Path, secret: str | None) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        Settings(_env_file=None, environment="prod", jwt_secret=secret)
    assert not (workdir / ".jwt-secret").exists(), "prod must never generate a secret"


def test_prod_accepts_a_real_secret(workdir: Path) -> None:
    settings = Settings(_env_file=None, environment="prod", jwt_secret="k" * 32)
    assert settings.secret_key == "k" * 32


def test_dev_generates_a_secret_once_and_keeps_it(workdir: Path) -> None:
    first = Settings(_env_file=None)
    second = Settings(_env_file=None)
    stored = (workdir / ".jwt-secret").read_text()
    assert first.secret_key == second.secret_key == stored
    assert len(stored) >= 32
    assert (workdir / ".jwt-secret").stat().st_mode & 0o077 == 0, "secret file must be private"


def test_dev_secret_is_agreed_on_by_workers_starting_together(workdir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from booking_service.config_checks import load_or_create_secret; "
        "print(load_or_create_secret(Path(sys.argv[1])))"
    )
    target = workdir / "shared" / ".jwt-secret"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outputs = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(outputs) == 1
    assert outputs == {target.read_text()}
    assert [p.name for p in target.parent.iterdir()] == [".jwt-secret"], "no temp files left"


def test_a_corrupt_secret_file_is_refused(workdir: Path) -> None:
    (workdir / ".jwt-secret").write_text("too short")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        load_or_create_secret(workdir / ".jwt-secret")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("rate_limit", "fast", "is not a rate limit"),
        ("rate_limit", "0/second", "allows nothing"),
        ("auth_rate_limit", "10 per fortnight", "is not a rate limit"),
        ("rate_limit_storage_url", "memcached://127.0.0.1", "must start with"),
        ("trusted_proxies", "*", "is not an IP address or network"),
        ("trusted_proxies", "10.0.0.1,proxy.internal", "is not an IP address or network"),
        ("max_request_body_bytes", 10, "greater than or equal"),
    ],
)
def test_bad_limits_and_proxies_are_refused_at_start_up(
    workdir: Path, field: str, value: object, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        Settings(_env_file=None, jwt_secret=SECRET, **{field: value})


def test_limits_and_proxies_from_the_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "5/second;100/hour")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16,::1")
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "redis://127.0.0.1:6379/3")
    settings = Settings(_env_file=None, jwt_secret=SECRET)
    assert settings.rate_limit == "5/second;100/hour"
    assert settings.trusted_proxies == ["10.0.0.5", "10.1.0.0/16", "::1"]
    assert settings.rate_limit_storage_url == "redis://127.0.0.1:6379/3"


WEBHOOK_SECRET = "h" * 32


def test_webhooks_are_off_unless_a_url_is_given(workdir: Path) -> None:
    assert Settings(_env_file=None, jwt_secret=SECRET).webhook_url is None
    assert Settings(_env_file=None, jwt_secret=SECRET, webhook_url="").webhook_url is None
    settings = Settings(
        _env_file=None,
        jwt_secret=SECRET,
        webhook_url="https://hooks.example.com/booking",
        webhook_secret=WEBHOOK_SECRET,
    )
    assert settings.webhook_url == "https://hooks.example.com/booking"


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("webhook_secret", [None, "", "short"])
def test_a_webhook_url_demands_a_real_secret_in_every_environment(
    workdir: Path, environment: str, webhook_secret: str | None
) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET must be set"):
        Settings(
            _env_file=None,
            environment=environment,
            jwt_secret=SECRET,
            webhook_url="https://hooks.example.com/booking",
            webhook_secret=webhook_secret,
        )


@pytest.mark.parametrize("url", ["hooks.example.com", "ftp://hooks.example.com", "http://"])
def test_a_webhook_url_must_be_http(workdir: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="is not an http"):
        Settings(_env_file=None, jwt_secret=SECRET, webhook_url=url, webhook_secret=WEBHOOK_SECRET)


def test_an_idempotency_lease_outliving_the_key_is_refused(workdir: Path) -> None:
    with pytest.raises(ValidationError, match="IDEMPOTENCY_LEASE_SECONDS"):
        Settings(
            _env_file=None,
            jwt_secret=SECRET,
            idempotency_key_ttl_seconds=60,
            idempotency_lease_seconds=60,
        )


def test_the_ticket_code_key_is_its_own_or_derived_from_the_jwt_secret(workdir: Path) -> None:
    derived = Settings(_env_file=None, jwt_secret=SECRET, ticket_code_secret="")
    assert derived.ticket_code_secret is None
    assert len(derived.ticket_code_key) == 32
    assert SECRET.encode() not in derived.ticket_code_key
    other_jwt = Settings(_env_file=None, jwt_secret=SECRET + "x")
    assert other_jwt.ticket_code_key != derived.ticket_code_key
    own = Settings(_env_file=None, jwt_secret=SECRET, ticket_code_secret="k" * 40)
    assert own.ticket_code_key == b"k" * 40
    kept = Settings(_env_file=None, jwt_secret=SECRET + "x", ticket_code_secret="k" * 40)
    assert kept.ticket_code_key == own.ticket_code_key, "a new JWT secret keeps the codes"
    with pytest.raises(ValidationError, match="TICKET_CODE_SECRET must be at least 32 bytes"):
        Settings(_env_file=None, jwt_secret=SECRET, ticket_code_secret="short")


def test_the_group_size_is_read_under_its_former_name_too(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(_env_file=None, jwt_secret=SECRET).booking_group_max == 256
    monkeypatch.setenv("BOOKING_BATCH_MAX", "8")
    assert Settings(_env_file=None, jwt_secret=SECRET).booking_group_max == 8
    monkeypatch.setenv("BOOKING_GROUP_MAX", "16")
    assert Settings(_env_file=None, jwt_secret=SECRET).booking_group_max == 16, "the new name wins"
    assert Settings(_env_file=None, jwt_secret=SECRET, booking_group_max=4).booking_group_max == 4
