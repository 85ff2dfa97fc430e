"""Registration, login, reading tokens, closing accounts. (Whether a token's account is still
open: account_checks.py.)"""

from __future__ import annotations

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
from booking_service.services.account_checks import ActiveUserCache


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
