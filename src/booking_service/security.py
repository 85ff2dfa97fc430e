"""Password hashing and JWT: the only module that imports passlib or jose."""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jose import jwk, jwt
from passlib.context import CryptContext

from booking_service.config import Settings

JWT_ALGORITHM = "HS256"
# Ours are about 250 characters (a 50-character name at most): anything longer is refused
# unread, so nobody can make us parse megabytes.
MAX_TOKEN_LENGTH = 4096
# The header is the one part the JWT library parses before it checks the signature, so anyone
# can make it parse this: ours is 36 characters; 256 cannot nest deep enough to hurt.
MAX_HEADER_LENGTH = 256
# Claims holding a time (seconds since the epoch): numbers, and small enough to be exact.
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
MAX_NUMERIC_DATE = 2**53


class InvalidToken(Exception):
    """The token is missing, malformed, expired, tampered with or signed with another key."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    username: str
    expires_at: int  # the token's `exp`, seconds since the epoch


class PasswordHasher:
    """argon2id through passlib, computed off the event loop.

    Hashing costs ~20 ms of CPU and ~19 MiB (defaults), so a bounded thread pool caps how many
    run at once: a burst of logins queues instead of exhausting memory or starving the loop.
    """

    def __init__(self, *, memory_kib: int, time_cost: int, concurrency: int) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=1,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="password-hash"
        )
        # Verified when a username is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._context.hash("not a real password, only for equal timing")

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            concurrency=settings.password_hash_concurrency,
        )

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check `password`; with no hash (unknown user) burn the same time and return False."""
        loop = asyncio.get_running_loop()
        target = password_hash if password_hash is not None else self._dummy_hash
        ok = await loop.run_in_executor(self._executor, self._safe_verify, password, target)
        return ok and password_hash is not None

    def hash_sync(self, password: str) -> str:
        """Blocking hash, for bulk tooling outside the request path."""
        return self._context.hash(password)

    def _safe_verify(self, password: str, password_hash: str) -> bool:
        try:
            return bool(self._context.verify(password, password_hash))
        except (ValueError, TypeError):
            # A corrupt stored hash is a failed login, not a server error.
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class TokenCodec:
    """HS256 only; `exp`, `iat` and `sub` required; the algorithm is pinned on decode.

    A token that verified once is remembered, with its expiry, until it expires: clients send
    the same token with every request, and checking its signature and claims again each time
    cost about a sixth of a `/status` poll. Only tokens signed with our secret get in, and the
    memory is bounded: at most `max_remembered` tokens, cleared when full, each kept under a
    16-byte digest of its text, about 0.3 KiB with its claims (6 MiB per worker when full);
    keyed by the text itself, each cost 0.5 KiB.
    """

    def __init__(
        self, *, secret: str, expire_minutes: int, issuer: str, max_remembered: int = 20_000
    ) -> None:
        if not secret:
            raise ValueError("an empty JWT secret is never valid")
        # Built once: handed the secret as text, jose tries to parse it as a JSON key set and
        # builds a key object from it on every call (about a third of a verification).
        self._signing_key = jwk.construct(secret, JWT_ALGORITHM)
        self._expire_seconds = expire_minutes * 60
        self._issuer = issuer
        self._max_remembered = max_remembered
        self._verified: dict[bytes, TokenClaims] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCodec:
        return cls(
            secret=settings.secret_key,
            expire_minutes=settings.jwt_expire_minutes,
            issuer=settings.jwt_issuer,
        )

    @property
    def expires_in_seconds(self) -> int:
        return self._expire_seconds

    def issue(self, user_id: int, username: str, *, now: float | None = None) -> str:
        issued_at = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "name": username,
            "iss": self._issuer,
            "iat": issued_at,
            "exp": issued_at + self._expire_seconds,
        }
        return str(jwt.encode(claims, self._signing_key, algorithm=JWT_ALGORITHM))

    def decode(self, token: str) -> TokenClaims:
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        claims = self._verified.get(digest)
        if claims is not None:
            if time.time() < claims.expires_at:
                return claims
            del self._verified[digest]
        claims = self._verify(token)
        if len(self._verified) >= self._max_remembered:
            self._verified.clear()
        self._verified[digest] = claims
        return claims

    def _verify(self, token: str) -> TokenClaims:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        if len(token.partition(".")[0]) > MAX_HEADER_LENGTH:
            raise InvalidToken("token header too long")
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[JWT_ALGORITHM],
                issuer=self._issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except Exception as exc:
            # Not only JWTError: jose lets through whatever its parsing and checks raise
            # (RecursionError for nested JSON, OverflowError for an `exp` of 1e999, ...).
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
        for claim in NUMERIC_DATE_CLAIMS:
            if claim in claims and not _is_numeric_date(claims[claim]):
                raise InvalidToken(f"malformed {claim}")
        sub = claims.get("sub")
        name = claims.get("name")
        if not isinstance(sub, str) or not _is_ascii_digits(sub) or not isinstance(name, str):
            raise InvalidToken("malformed subject")
        user_id = int(sub)
        if not 0 < user_id < 2**63:
            raise InvalidToken("malformed subject")
        expires_at = claims["exp"]  # a number (checked above), in the future (checked by jose)
        return TokenClaims(user_id=user_id, username=name, expires_at=int(expires_at))


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19


def _is_numeric_date(value: object) -> bool:
    """A JSON number of seconds (RFC 7519 NumericDate, fractions allowed) in a sane range.
    jose only calls int() on it, which takes "123" and True, and overflows on 1e999."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value < MAX_NUMERIC_DATE  # false for NaN and infinities too
