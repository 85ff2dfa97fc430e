"""Request dependencies, as typed `Annotated` aliases: the app's state, the session, the
services and the JWT guard. Each reads the one AppState; FastAPI resolves a dependency once per
request, so every service of a request shares the request's session.

All are `async def`, even those that never await: FastAPI runs a plain `def` dependency in a
worker thread, a hop that costs more than building the object itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from booking_service.app_state import AppState, app_state
from booking_service.errors import NotAuthenticated
from booking_service.readiness import Readiness
from booking_service.services.accounts import AccountService
from booking_service.services.auth import AuthenticatedUser, AuthService, read_token
from booking_service.services.bookings import BookingService
from booking_service.services.check_in import CheckInService
from booking_service.services.events import EventService
from booking_service.services.idempotency import IdempotencyService
from booking_service.services.offers import OfferService
from booking_service.services.organizer import OrganizerService
from booking_service.services.transfers import TransferService


async def get_app_state(request: Request) -> AppState:
    return app_state(request.app)


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_session(request: Request, state: AppStateDep) -> AsyncSession:
    """The request's one session, made on first use. Services run every transaction through
    db.run_transaction, which always ends it (commit, or rollback on error) and so hands the
    connection back to the pool: nothing is left for a close. Not a `yield` dependency on
    purpose: FastAPI's context-manager machinery around one costs more per request than the
    whole session. Kept on the request, so that the idempotency service (made only for keyed
    requests, see get_idempotency_service) shares it too."""
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is None:
        session = request.state.session = state.session_factory()
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_auth_service(session: SessionDep, state: AppStateDep) -> AuthService:
    return AuthService(
        session,
        hasher=state.password_hasher,
        tokens=state.token_codec,
        user_cache=state.user_cache,
        lock_retries=state.settings.db_lock_retries,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


class BearerToken(HTTPBearer):
    """`Authorization: Bearer <token>`, and the original service's bare `Authorization: <token>`.

    Declared in OpenAPI as an HTTP bearer scheme, so Swagger UI's Authorize button works.
    """

    def __init__(self) -> None:
        super().__init__(
            bearerFormat="JWT",
            scheme_name="BearerAuth",
            description="A token from `POST /login`.",
            auto_error=False,
        )

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        header = request.headers.get("authorization", "").strip()
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if not credentials:
            # Bare token, as the original service's clients send it.
            return HTTPAuthorizationCredentials(scheme="Bearer", credentials=scheme)
        if scheme.lower() != "bearer":
            return None
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials.strip())


bearer_token = BearerToken()


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_token)]


async def get_token_user(
    request: Request, credentials: Credentials, state: AppStateDep
) -> AuthenticatedUser:
    """Whom a valid token speaks for, from the token alone: no database.

    Only for routes whose service checks the account itself, inside the transaction that acts
    for it (booking: the flash-sale path, where one more query per request is what costs most).
    """
    if credentials is None:
        raise NotAuthenticated("Missing or malformed Authorization header")
    user = read_token(state.token_codec, credentials.credentials)
    # The rate limiter counts per user on authenticated routes (ratelimit.user_key).
    request.state.user_id = user.id
    return user


TokenUser = Annotated[AuthenticatedUser, Depends(get_token_user)]


async def get_current_user(user: TokenUser, auth: AuthServiceDep) -> AuthenticatedUser:
    """A valid token whose account is still open (cached per worker for a few seconds)."""
    await auth.ensure_open(user.id)
    return user


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


async def get_event_service(session: SessionDep, state: AppStateDep) -> EventService:
    return EventService(
        session,
        max_tickets=state.settings.max_tickets_per_event,
        max_per_user=state.settings.max_per_user_limit,
        lock_retries=state.settings.db_lock_retries,
        status_cache=state.status_cache,
    )


EventServiceDep = Annotated[EventService, Depends(get_event_service)]


async def get_booking_service(session: SessionDep, state: AppStateDep) -> BookingService:
    return BookingService(
        session,
        coalescer=state.coalescer,
        ticket_codes=state.ticket_codes,
        lock_retries=state.settings.db_lock_retries,
    )


BookingServiceDep = Annotated[BookingService, Depends(get_booking_service)]


async def get_account_service(auth: AuthServiceDep, bookings: BookingServiceDep) -> AccountService:
    return AccountService(auth=auth, bookings=bookings)


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_idempotency_service(request: Request) -> IdempotencyService:
    """Not a dependency: made by hand, only for a request that carries an Idempotency-Key
    (api/idempotent.py), so that a booking without one does not pay for it."""
    state = app_state(request.app)
    settings = state.settings
    return IdempotencyService(
        await get_session(request, state),
        ttl_seconds=settings.idempotency_key_ttl_seconds,
        lease_seconds=settings.idempotency_lease_seconds,
        lock_retries=settings.db_lock_retries,
    )


async def get_offer_service(session: SessionDep, state: AppStateDep) -> OfferService:
    return OfferService(session, lock_retries=state.settings.db_lock_retries)


OfferServiceDep = Annotated[OfferService, Depends(get_offer_service)]


async def get_organizer_service(session: SessionDep, state: AppStateDep) -> OrganizerService:
    return OrganizerService(
        session,
        max_tickets=state.settings.max_tickets_per_event,
        max_per_user=state.settings.max_per_user_limit,
        lock_retries=state.settings.db_lock_retries,
    )


OrganizerServiceDep = Annotated[OrganizerService, Depends(get_organizer_service)]


async def get_check_in_service(session: SessionDep, state: AppStateDep) -> CheckInService:
    return CheckInService(
        session,
        ticket_codes=state.ticket_codes,
        lock_retries=state.settings.db_lock_retries,
    )


CheckInServiceDep = Annotated[CheckInService, Depends(get_check_in_service)]


async def get_transfer_service(session: SessionDep, state: AppStateDep) -> TransferService:
    return TransferService(session, lock_retries=state.settings.db_lock_retries)


TransferServiceDep = Annotated[TransferService, Depends(get_transfer_service)]


async def get_readiness(state: AppStateDep) -> Readiness:
    return state.readiness


ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
