"""Request dependencies, as typed `Annotated` aliases: the services and the JWT guard. Each is
one dependency that reads the one AppState and the request itself, not a chain of
dependencies: FastAPI's solving costs per dependency, on every request. Every service of a
request shares the request's one session (request_session).

All are `async def`, even those that never await: FastAPI runs a plain `def` dependency in a
worker thread, a hop that costs more than building the object itself.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.app_state import AppState, app_state
from booking_service.errors import NotAuthenticated
from booking_service.readiness import Readiness
from booking_service.services.accounts import AccountService
from booking_service.services.auth import AuthenticatedUser, AuthService, read_token
from booking_service.services.bookings import BookingService
from booking_service.services.check_in import CheckInService
from booking_service.services.events import EventService, StatusReads
from booking_service.services.idempotency import IdempotencyService
from booking_service.services.offers import OfferService
from booking_service.services.organizer import OrganizerService
from booking_service.services.transfers import TransferService


def request_session(request: Request, state: AppState) -> AsyncSession:
    """The request's one session, made on first use. Services run every transaction through
    db.run_transaction, which always ends it (commit, or rollback on error) and so hands the
    connection back to the pool: nothing is left for a close. Not a `yield` dependency on
    purpose: FastAPI's context-manager machinery around one costs more per request than the
    whole session. Kept on the request, so that every service of a request shares it (the
    idempotency service too, made only for keyed requests, see get_idempotency_service)."""
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is None:
        session = request.state.session = state.session_factory()
    return session


def _auth_service(request: Request, state: AppState) -> AuthService:
    return AuthService(
        request_session(request, state),
        hasher=state.password_hasher,
        tokens=state.token_codec,
        user_cache=state.user_cache,
        lock_retries=state.settings.db_lock_retries,
    )


async def get_auth_service(request: Request) -> AuthService:
    return _auth_service(request, app_state(request.app))


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


class TokenGuard(HTTPBearer):
    """Whom a valid token speaks for, from the token alone: no database. Reads
    `Authorization: Bearer <token>`, and the original service's bare `Authorization: <token>`.

    Declared in OpenAPI as an HTTP bearer scheme, so Swagger UI's Authorize button works. The
    guard is one dependency that reads the request itself, rather than a chain of them
    (credentials, then the token, then the account): FastAPI's solving costs per dependency,
    and every authenticated request pays it.

    On its own (TokenUser) only for routes whose service checks the account itself, inside the
    transaction that acts for it (booking: the flash-sale path, where one more query per
    request is what costs most).
    """

    def __init__(self) -> None:
        super().__init__(
            bearerFormat="JWT",
            scheme_name="BearerAuth",
            description="A token from `POST /login`.",
            auto_error=False,
        )

    async def __call__(self, request: Request) -> AuthenticatedUser:  # type: ignore[override]
        token = _bearer_credentials(request.headers.get("authorization", ""))
        if token is None:
            raise NotAuthenticated("Missing or malformed Authorization header")
        user = read_token(app_state(request.app).token_codec, token)
        # The rate limiter counts per user on authenticated routes (ratelimit.user_key).
        request.state.user_id = user.id
        return user


class AccountGuard(TokenGuard):
    """A valid token whose account is still open (cached per worker for a few seconds; the
    lookups of concurrent requests grouped: services/account_checks.py)."""

    async def __call__(self, request: Request) -> AuthenticatedUser:  # type: ignore[override]
        user = await super().__call__(request)
        await app_state(request.app).account_checks.ensure_open(user.id)
        return user


def _bearer_credentials(header: str) -> str | None:
    header = header.strip()
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if not credentials:
        return scheme  # a bare token, as the original service's clients send it
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


get_token_user = TokenGuard()
TokenUser = Annotated[AuthenticatedUser, Depends(get_token_user)]

get_current_user = AccountGuard()
CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


async def get_event_service(request: Request) -> EventService:
    state = app_state(request.app)
    return EventService(
        request_session(request, state),
        max_tickets=state.settings.max_tickets_per_event,
        max_per_user=state.settings.max_per_user_limit,
        lock_retries=state.settings.db_lock_retries,
    )


EventServiceDep = Annotated[EventService, Depends(get_event_service)]


async def get_status_reads(request: Request) -> StatusReads:
    return app_state(request.app).status_reads


StatusReadsDep = Annotated[StatusReads, Depends(get_status_reads)]


def _booking_service(request: Request, state: AppState) -> BookingService:
    return BookingService(
        partial(request_session, request, state),
        coalescer=state.coalescer,
        ticket_codes=state.ticket_codes,
        lock_retries=state.settings.db_lock_retries,
    )


async def get_booking_service(request: Request) -> BookingService:
    return _booking_service(request, app_state(request.app))


BookingServiceDep = Annotated[BookingService, Depends(get_booking_service)]


async def get_account_service(request: Request) -> AccountService:
    state = app_state(request.app)
    return AccountService(
        auth=_auth_service(request, state), bookings=_booking_service(request, state)
    )


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_idempotency_service(request: Request) -> IdempotencyService:
    """Not a dependency: made by hand, only for a request that carries an Idempotency-Key
    (api/idempotent.py), so that a booking without one does not pay for it."""
    state = app_state(request.app)
    settings = state.settings
    return IdempotencyService(
        request_session(request, state),
        ttl_seconds=settings.idempotency_key_ttl_seconds,
        lease_seconds=settings.idempotency_lease_seconds,
        lock_retries=settings.db_lock_retries,
    )


async def get_offer_service(request: Request) -> OfferService:
    state = app_state(request.app)
    return OfferService(
        request_session(request, state), lock_retries=state.settings.db_lock_retries
    )


OfferServiceDep = Annotated[OfferService, Depends(get_offer_service)]


async def get_organizer_service(request: Request) -> OrganizerService:
    state = app_state(request.app)
    return OrganizerService(
        request_session(request, state),
        max_tickets=state.settings.max_tickets_per_event,
        max_per_user=state.settings.max_per_user_limit,
        lock_retries=state.settings.db_lock_retries,
    )


OrganizerServiceDep = Annotated[OrganizerService, Depends(get_organizer_service)]


async def get_check_in_service(request: Request) -> CheckInService:
    state = app_state(request.app)
    return CheckInService(
        request_session(request, state),
        ticket_codes=state.ticket_codes,
        lock_retries=state.settings.db_lock_retries,
    )


CheckInServiceDep = Annotated[CheckInService, Depends(get_check_in_service)]


async def get_transfer_service(request: Request) -> TransferService:
    state = app_state(request.app)
    return TransferService(
        request_session(request, state), lock_retries=state.settings.db_lock_retries
    )


TransferServiceDep = Annotated[TransferService, Depends(get_transfer_service)]


async def get_readiness(request: Request) -> Readiness:
    return app_state(request.app).readiness


ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
