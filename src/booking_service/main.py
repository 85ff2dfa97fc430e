"""The ASGI application: `create_app(settings)`, and `app` for uvicorn."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from booking_service import metrics
from booking_service.api import ROUTERS
from booking_service.app_state import AppState, store_app_state
from booking_service.background import BackgroundWork, repeat
from booking_service.config import Settings, get_settings
from booking_service.db import RetryBackoff, RetryHooks, create_session_factory
from booking_service.docs import install_docs
from booking_service.engine import create_engine
from booking_service.http_errors import install_error_handlers
from booking_service.instrumentation import RequestInstrumentation
from booking_service.middleware import BodyChecks, EnvelopeCORSMiddleware
from booking_service.openapi import REPLAYED_HEADER
from booking_service.openapi_document import TAGS, install_openapi
from booking_service.ratelimit import RateLimiter
from booking_service.ratelimit_redis import redis_client_url
from booking_service.readiness import Readiness, RedisProbe
from booking_service.security import PasswordHasher, TokenCodec
from booking_service.services import housekeeping
from booking_service.services.account_checks import AccountChecks, ActiveUserCache
from booking_service.services.coalescer import Coalescer
from booking_service.services.events import StatusCache, StatusReads
from booking_service.services.offers import OfferSweeper
from booking_service.services.webhooks import WebhookSender
from booking_service.ticket_codes import TicketCodes

DESCRIPTION = """\
Book tickets for events, with a first-come-first-served waiting list once an event sells out.
Cancelling hands the ticket to the first person in line at once, or, for events in `offer`
mode, offers it to them until a deadline. Organizers can change, close or cancel their
events, and every change of a booking is kept in a history.

Authenticate with `POST /login` and send the token as `Authorization: Bearer <token>`.
Every error has the same body: `{"message", "code", "details"}`.
"""


class BookingApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, around the error handlers too: even a 500 gets its request id and its
        # log line (middleware added with add_middleware runs inside the 500 handler).
        return RequestInstrumentation(super().build_middleware_stack())


def _redis_probe(settings: Settings) -> RedisProbe | None:
    url = redis_client_url(settings.rate_limit_storage_url)
    if url is None or not settings.rate_limit_enabled:
        return None
    return RedisProbe(url, settings.ready_timeout_seconds)


def build_state(settings: Settings, webhook_http: httpx.AsyncClient | None) -> AppState:
    """Everything a worker keeps while it runs; connects to nothing yet."""
    engine = create_engine(settings)
    status_cache = StatusCache(settings.status_cache_seconds)
    session_factory = create_session_factory(
        engine,
        # This worker's committed changes to an event drop its /status snapshot at once.
        on_events_changed=status_cache.forget,
        retry_backoff=RetryBackoff(
            settings.db_retry_backoff_seconds, settings.db_retry_backoff_max_seconds
        ),
        retry_hooks=RetryHooks(retried=metrics.count_lock_retry, gave_up=metrics.count_gave_up),
    )
    retries = settings.db_lock_retries
    user_cache = ActiveUserCache(settings.auth_user_cache_seconds)
    return AppState(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        token_codec=TokenCodec.from_settings(settings),
        password_hasher=PasswordHasher.from_settings(settings),
        ticket_codes=TicketCodes(settings.ticket_code_key),
        user_cache=user_cache,
        account_checks=AccountChecks(session_factory, user_cache, lock_retries=retries),
        status_cache=status_cache,
        status_reads=StatusReads(status_cache, session_factory, lock_retries=retries),
        rate_limiter=RateLimiter(settings),
        coalescer=Coalescer(
            session_factory, group_max=settings.booking_group_max, lock_retries=retries
        ),
        offer_sweeper=OfferSweeper(session_factory, lock_retries=retries),
        readiness=Readiness(
            engine, _redis_probe(settings), timeout_seconds=settings.ready_timeout_seconds
        ),
        webhook_sender=(
            None if webhook_http is None else WebhookSender(session_factory, settings, webhook_http)
        ),
    )


def start_background(state: AppState) -> BackgroundWork:
    settings = state.settings
    background = BackgroundWork()
    # Every worker sweeps: no single process has to stay alive for offers to expire.
    background.start(
        "offer-sweeper",
        repeat(
            state.offer_sweeper.sweep,
            every=settings.offer_sweep_interval_seconds,
            name="offer sweep",
        ),
    )
    background.start(
        "housekeeping",
        repeat(
            lambda: housekeeping.tidy(state.session_factory, settings),
            every=settings.housekeeping_interval_seconds,
            name="housekeeping",
        ),
    )
    if state.webhook_sender is not None:
        background.start("webhooks", state.webhook_sender.run_forever())
    return background


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        webhook_http: httpx.AsyncClient | None = None
        if settings.webhook_url is not None:
            webhook_http = httpx.AsyncClient(
                timeout=settings.webhook_timeout_seconds, follow_redirects=False
            )
        state = build_state(settings, webhook_http)
        store_app_state(app, state)
        await state.rate_limiter.start()
        background = start_background(state)
        # Everything alive now (the app, SQLAlchemy's and pydantic's caches, ...) lives as long
        # as the worker: keep it out of the collector's full passes, which otherwise walked it
        # about once a second under load, stalling the worker ~70 ms each time.
        gc.freeze()
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish before it runs this.
            await background.stop()
            if webhook_http is not None:
                await webhook_http.aclose()
            state.password_hasher.close()
            await state.readiness.close()
            await state.rate_limiter.close()
            await state.engine.dispose()
            metrics.worker_stopped()

    app = BookingApp(
        title="booking-service",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Served by install_docs from bundled files instead of a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # FastAPI's own OpenTelemetry layer asks OpenTelemetry's global providers on every
        # request whether anyone listens (2-4% of a request's CPU, measured); nothing here
        # configures them: the service's metrics and logs are its own (metrics.py, logs.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_middleware(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app, settings)
    install_docs(app)
    return app


def install_middleware(app: FastAPI, settings: Settings) -> None:
    # Added innermost first: CORS wraps the body checks, so even a 413 carries CORS headers.
    app.add_middleware(BodyChecks, max_bytes=settings.max_request_body_bytes)
    if settings.cors_allow_origins:
        app.add_middleware(
            EnvelopeCORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=[
                REPLAYED_HEADER,
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "X-Request-ID",
            ],
            max_age=600,
        )


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `booking_service.main:app` is built on first access, so importing this module (to reach
    # create_app, say) reads no settings and touches no files.
    global _default_app
    if name != "app":
        raise AttributeError(name)
    if _default_app is None:
        _default_app = create_app()
    return _default_app
