"""Password hashing and tokens, below the HTTP layer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import tracemalloc
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
    return _b64_bytes(json.dumps(data).encode())


def _b64_bytes(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HS256_HEADER = b'{"alg":"HS256","typ":"JWT"}'


def signed_raw(codec: TokenCodec, payload: bytes, *, header: bytes = HS256_HEADER) -> str:
    """A token of exactly these JSON bytes, signed with the codec's own secret: for payloads
    no JSON encoder writes (1e999) and headers jose would never make."""
    signing_input = f"{_b64_bytes(header)}.{_b64_bytes(payload)}"
    secret = codec._signing_key.prepared_key  # the secret's bytes, as jose holds them
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64_bytes(mac)}"


def _payload_with(codec: TokenCodec, **raw: str) -> bytes:
    """Valid claims as JSON, with some values replaced by raw JSON text."""
    now = int(time.time())
    claims = {
        "sub": '"42"',
        "name": '"alice"',
        "iss": '"booking-service"',
        "iat": str(now),
        "exp": str(now + 60),
        **raw,
    }
    return ("{" + ",".join(f'"{k}":{v}' for k, v in claims.items()) + "}").encode()


NESTED = 4_000  # deeper than Python's JSON parser recurses


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
    # Parsed before any signature is checked: anyone can send these.
    "deeply nested header": lambda c: (
        f"{_b64_bytes(b'[' * NESTED + b']' * NESTED)}.{_b64(_valid_claims())}.c2ln"
    ),
    "header of 5000 digits": lambda c: signed_raw(
        c, _payload_with(c), header=b'{"alg":"HS256","x":1' + b"0" * 5000 + b"}"
    ),
    "header not an object": lambda c: signed_raw(c, _payload_with(c), header=b'["HS256"]'),
    "header not UTF-8": lambda c: signed_raw(c, _payload_with(c), header=b'{"alg":"\xe9"}'),
    "oversized": lambda c: c.issue(42, "a" * 5000),
    # Signed with the right secret: only a leaked secret or a bug of ours would make these.
    "exp 1e999": lambda c: signed_raw(c, _payload_with(c, exp="1e999")),
    "exp Infinity": lambda c: signed_raw(c, _payload_with(c, exp="Infinity")),
    "exp NaN": lambda c: signed_raw(c, _payload_with(c, exp="NaN")),
    "exp 1e300": lambda c: signed_raw(c, _payload_with(c, exp="1e300")),
    "exp as a string": lambda c: signed_raw(c, _payload_with(c, exp='"99999999999"')),
    "exp of 400 digits": lambda c: signed_raw(c, _payload_with(c, exp="9" * 400)),
    "exp true": lambda c: signed_raw(c, _payload_with(c, exp="true")),
    "exp a list": lambda c: signed_raw(c, _payload_with(c, exp="[99999999999]")),
    "iat 1e999": lambda c: signed_raw(c, _payload_with(c, iat="1e999")),
    "iat as a string": lambda c: signed_raw(c, _payload_with(c, iat='"1"')),
    "nbf 1e999": lambda c: signed_raw(c, _payload_with(c, nbf="1e999")),
    "payload nested deeply": lambda c: signed_raw(c, b"[" * NESTED + b"]" * NESTED),
    "payload not an object": lambda c: signed_raw(c, b'"alice"'),
    "payload of 5000 digits": lambda c: signed_raw(c, _payload_with(c, exp="1" + "0" * 5000)),
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


def test_a_remembered_token_costs_a_few_hundred_bytes() -> None:
    # 20,000 are remembered per worker by default: the token text (~270 bytes) is not kept.
    codec = TokenCodec(secret=SECRET, expire_minutes=5, issuer="booking-service")
    tokens = 2_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for user_id in range(100_000, 100_000 + tokens):
            codec.decode(codec.issue(user_id, f"bench-152604-{user_id:06d}"))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(codec._verified) == tokens
    assert held / tokens < 500  # 626 bytes when the text was the key, 422 without


def test_fractional_numeric_dates_are_accepted(codec: TokenCodec) -> None:
    # RFC 7519 NumericDate: a JSON number, which may have a fraction.
    now = time.time()
    token = signed_raw(codec, _payload_with(codec, iat=f"{now:.3f}", exp=f"{now + 60:.3f}"))
    claims = codec.decode(token)
    assert (claims.user_id, claims.expires_at) == (42, int(now + 60))


def test_an_oversized_token_is_refused_unread(
    codec: TokenCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = codec.issue(42, "a" * 5000)

    def must_not_parse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an oversized token reached the JWT library")

    monkeypatch.setattr("booking_service.security.jwt.decode", must_not_parse)
    with pytest.raises(InvalidToken, match="too long"):
        codec.decode(token)
