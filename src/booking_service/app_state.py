"""The application's state: one typed object per app, stored once on `app.state`.

`main.create_app` builds it when the app starts (its lifespan) and closes it when it stops;
the dependencies in deps.py and the rate limiter read it. Types only are imported here:
ratelimit reads this module and is named in it, and importing it should load nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from booking_service.config import Settings
    from booking_service.ratelimit import RateLimiter
    from booking_service.readiness import Readiness
    from booking_service.security import PasswordHasher, TokenCodec
    from booking_service.services.account_checks import AccountChecks, ActiveUserCache
    from booking_service.services.coalescer import Coalescer
    from booking_service.services.events import StatusCache, StatusReads
    from booking_service.services.offers import OfferSweeper
    from booking_service.services.webhooks import WebhookSender
    from booking_service.ticket_codes import TicketCodes

# The one attribute of Starlette's untyped `app.state` this service uses.
_ATTRIBUTE = "booking"


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    token_codec: TokenCodec
    password_hasher: PasswordHasher
    ticket_codes: TicketCodes
    user_cache: ActiveUserCache
    account_checks: AccountChecks
    status_cache: StatusCache
    status_reads: StatusReads
    rate_limiter: RateLimiter
    coalescer: Coalescer
    offer_sweeper: OfferSweeper
    readiness: Readiness
    webhook_sender: WebhookSender | None  # None unless WEBHOOK_URL is set


def app_state(app: Any) -> AppState:
    """The state of a started app (`request.app`, or the app itself in tests)."""
    state: AppState = getattr(app.state, _ATTRIBUTE)
    return state


def store_app_state(app: Any, state: AppState) -> None:
    setattr(app.state, _ATTRIBUTE, state)
