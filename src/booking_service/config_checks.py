"""Checks of single settings, and the dev secret file: what Settings' validators call."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

MIN_SECRET_BYTES = 32
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


def split_commas(value: Any) -> Any:
    """`a, b` from the environment as a list; a list stays as it is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_rate_limit(value: str) -> str:
    try:
        items = parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate limit like `1/second`") from exc
    if any(item.amount < 1 for item in items):
        raise ValueError(f"{value!r} allows nothing at all")
    return value


def check_storage_url(value: str) -> str:
    if urlsplit(value).scheme not in RATE_LIMIT_STORAGE_SCHEMES:
        raise ValueError("must start with memory://, redis://, rediss:// or redis+unix://")
    return value


def check_proxies(value: list[str]) -> list[str]:
    for proxy in value:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            # "*" is refused too: trusting everyone lets any client choose its address.
            raise ValueError(f"{proxy!r} is not an IP address or network") from exc
    return value


def check_origins(value: list[str]) -> list[str]:
    for origin in value:
        parts = urlsplit(origin)
        explicit = parts.scheme in ("http", "https") and parts.netloc and not parts.path
        if origin != "*" and not explicit:
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    return value


def check_webhook_url(value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def long_enough(secret: str) -> bool:
    """Secrets are measured in bytes, the key length HMAC sees, not in characters."""
    return len(secret.encode()) >= MIN_SECRET_BYTES


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
    if not long_enough(secret):
        raise ValueError(f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret
