"""Password hashing and tokens, below the HTTP layer."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import pytest
from jose import jwt

from booking_service.security import InvalidToken, PasswordHasher, TokenCodec

SECRET = "k" * 40


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(memory_kib=8 * 1024, time_cost=1, concurrency=2)


@pytest.fixture
def codec() -> TokenCodec:
    return TokenCodec(secret=SECRET, expire_minutes=5, issuer="booking-service")


async def test_argon2id_round_trip(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("password123")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify("password123", hashed)
    assert not await hasher.verify("password124", hashed)


async def test_long_and_unicode_passwords_are_not_truncated(hasher: PasswordHasher) -> None:
    # bcrypt would silently ignore everything after 72 bytes; argon2 does not.
    base = "ü" * 60  # 120 bytes
    hashed = await hasher.hash(base + "a")
    assert await hasher.verify(base + "a", hashed)
    assert not await hasher.verify(base + "b", hashed)


async def test_unknown_user_and_corrupt_hash_fail_without_errors(hasher: PasswordHasher) -> None:
    assert not await hasher.verify("password123", None)
    assert not await hasher.verify("password123", "$argon2id$garbage")
    assert not await hasher.verify("password123", "not a hash at all")


def test_production_defaults_hash_with_owasp_parameters() -> None:
    hasher = PasswordHasher(memory_kib=19 * 1024, time_cost=2, concurrency=1)
    assert hasher.hash_sync("password123").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_hashing_is_bounded_and_off_the_event_loop() -> None:
    hasher = PasswordHasher(memory_kib=8 * 1024, time_cost=1, concurrency=2)
    running = 0
    peak = 0
    lock = threading.Lock()
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    class SlowContext:
        def hash(self, password: str) -> str:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                threads.add(threading.get_ident())
            time.sleep(0.05)
            with lock:
                running -= 1
            return "$fake$" + password

    hasher._context = SlowContext()  # type: ignore[assignment]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash(str(i)) for i in range(8)))
    tick_task.cancel()
    assert peak == 2, "no more hashes at once than configured"
    assert loop_thread not in threads, "hashing must not run on the event loop"
    assert ticks > 10, "the event loop kept running while hashes were computed"


def test_token_round_trip(codec: TokenCodec) -> None:
    claims = codec.decode(codec.issue(42, "alice"))
    assert (claims.user_id, claims.username) == (42, "alice")


def _forge(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return str(jwt.encode(claims, secret, algorithm=algorithm))


def _valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "42",
        "name": "alice",
        "iss": "booking-service",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _tampered(token: str) -> str:
    header, _payload, signature = token.split(".")
    return f"{header}.{_b64(_valid_claims(sub='1'))}.{signature}"


BAD_TOKENS = {
    "expired": lambda c: c.issue(42, "alice", now=time.time() - 2 * 3600),
    "wrong secret": lambda c: _forge(_valid_claims(), secret="another-secret-" + "y" * 30),
    "HS512": lambda c: _forge(_valid_claims(), algorithm="HS512"),
    "alg none": lambda c: _unsigned(_valid_claims()),
    "tampered payload": lambda c: _tampered(c.issue(42, "alice")),
    "missing exp": lambda c: _forge(_valid_claims(exp=None)),
    "missing sub": lambda c: _forge(_valid_claims(sub=None)),
    "missing iat": lambda c: _forge(_valid_claims(iat=None)),
    "wrong issuer": lambda c: _forge(_valid_claims(iss="someone-else")),
    "numeric sub": lambda c: _forge(_valid_claims(sub=42)),
    "non-numeric sub": lambda c: _forge(_valid_claims(sub="abc")),
    "unicode digit sub": lambda c: _forge(_valid_claims(sub="\u0664\u0662")),
    "zero sub": lambda c: _forge(_valid_claims(sub="0")),
    "huge sub": lambda c: _forge(_valid_claims(sub="9" * 30)),
    "missing name": lambda c: _forge(_valid_claims(name=None)),
    "garbage": lambda c: "not.a.token",
    "empty": lambda c: "",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_tokens_are_refused(codec: TokenCodec, kind: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(BAD_TOKENS[kind](codec))


def test_empty_secret_is_never_accepted() -> None:
    with pytest.raises(ValueError, match="empty"):
        TokenCodec(secret="", expire_minutes=5, issuer="x")


def test_a_remembered_token_is_refused_once_it_expires(codec: TokenCodec) -> None:
    # At most a second left: verified in full once, then remembered, then expired for real
    # (jose reads its own clock, in whole seconds, so the test waits instead of faking time).
    token = codec.issue(42, "alice", now=time.time() - codec.expires_in_seconds + 1)
    assert codec.decode(token).user_id == 42
    assert codec.decode(token).user_id == 42
    expires_at = codec.decode(token).expires_at
    time.sleep(max(0.0, expires_at + 1 - time.time()) + 0.05)
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_a_tampered_copy_of_a_remembered_token_is_still_refused(codec: TokenCodec) -> None:
    token = codec.issue(42, "alice")
    codec.decode(token)
    with pytest.raises(InvalidToken):
        codec.decode(_tampered(token))
    with pytest.raises(InvalidToken):
        codec.decode(token + "x")


def test_remembered_tokens_are_bounded() -> None:
    codec = TokenCodec(secret=SECRET, expire_minutes=5, issuer="booking-service", max_remembered=3)
    for user_id in range(1, 11):
        token = codec.issue(user_id, f"user{user_id}")
        assert codec.decode(token).user_id == user_id
        assert codec.decode(token).user_id == user_id  # the remembered answer is the same
    assert len(codec._verified) <= 3
