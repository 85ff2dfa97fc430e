"""Registration, login and the check that a token's user still has an open account."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import is_duplicate_key, run_transaction
from booking_service.errors import (
    AccountGone,
    InvalidCredentials,
    NotAuthenticated,
    UsernameTaken,
    WrongPassword,
)
from booking_service.repositories import users
from booking_service.security import InvalidToken, PasswordHasher, TokenCodec


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


def read_token(tokens: TokenCodec, token: str) -> AuthenticatedUser:
    """The user a bearer token speaks for; NotAuthenticated unless it is valid now."""
    try:
        claims = tokens.decode(token)
    except InvalidToken as exc:
        raise NotAuthenticated(code="invalid_token") from exc
    return AuthenticatedUser(id=claims.user_id, username=claims.username)


class ActiveUserCache:
    """Remembers, per worker and for a few seconds, which user ids have an open account.

    Tokens are stateless, but a closed account must stop working: the guard asks the database
    unless the answer is cached. Only "open" answers are cached, so a closed account is
    refused at most `ttl_seconds` after it closed (0 disables the cache).
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._expiry: dict[int, float] = {}

    def is_known_active(self, user_id: int) -> bool:
        expiry = self._expiry.get(user_id)
        return expiry is not None and expiry > time.monotonic()

    def remember_active(self, user_id: int) -> None:
        if self._ttl <= 0:
            return
        if len(self._expiry) >= self._max_entries:
            self._expiry.clear()
        self._expiry[user_id] = time.monotonic() + self._ttl

    def forget(self, user_id: int) -> None:
        self._expiry.pop(user_id, None)

    def clear(self) -> None:
        self._expiry.clear()


class AuthService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        user_cache: ActiveUserCache,
        lock_retries: int,
    ) -> None:
        self._session = session
        self._hasher = hasher
        self._tokens = tokens
        self._user_cache = user_cache
        self._retries = lock_retries

    async def register(self, username: str, password: str) -> int:
        # Hash before the transaction: nothing slow runs while the database holds locks.
        password_hash = await self._hasher.hash(password)
        try:
            return await run_transaction(
                self._session,
                lambda: users.add_user(self._session, username, password_hash),
                retries=self._retries,
            )
        except IntegrityError as exc:
            if is_duplicate_key(exc):
                raise UsernameTaken() from exc
            raise

    async def login(self, username: str, password: str) -> IssuedToken:
        account = await run_transaction(
            self._session,
            lambda: users.get_login(self._session, username.lower()),
            retries=self._retries,
            read_only=True,
            # Registered a moment ago through another node: seen here (see README, cluster).
            causal=True,
        )
        # Unknown names are verified against a dummy hash: both failures look and time the same.
        user_id, password_hash = account if account else (0, None)
        if not await self._hasher.verify(password, password_hash):
            raise InvalidCredentials()
        return IssuedToken(
            token=self._tokens.issue(user_id, username.lower()),
            expires_in=self._tokens.expires_in_seconds,
        )

    async def ensure_open(self, user_id: int) -> None:
        """AccountGone unless this account is open (per worker, a recent yes is trusted)."""
        if self._user_cache.is_known_active(user_id):
            return
        active = await self._is_active(user_id, causal=False)
        if not active:
            # On a cluster this node may not have the account yet: ask again, causally, before
            # refusing. Known accounts (nearly every request) never pay for it.
            active = await self._is_active(user_id, causal=True)
        if not active:
            raise AccountGone()
        self._user_cache.remember_active(user_id)

    async def _is_active(self, user_id: int, *, causal: bool) -> bool:
        return await run_transaction(
            self._session,
            lambda: users.is_active(self._session, user_id),
            retries=self._retries,
            read_only=True,
            causal=causal,
        )

    async def check_password(self, user_id: int, password: str) -> None:
        """WrongPassword unless `password` is this open account's."""
        password_hash = await run_transaction(
            self._session,
            lambda: users.get_password_hash(self._session, user_id),
            retries=self._retries,
            read_only=True,
        )
        if password_hash is None:
            raise AccountGone()
        if not await self._hasher.verify(password, password_hash):
            raise WrongPassword()

    async def close_account(self, user_id: int) -> bool:
        """Close the account unless it still holds a ticket or a place; True once closed."""
        closed = await run_transaction(
            self._session,
            lambda: users.close_if_nothing_held(self._session, user_id),
            retries=self._retries,
        )
        if closed:
            # This worker refuses the token at once; others within AUTH_USER_CACHE_SECONDS.
            self._user_cache.forget(user_id)
        return closed
