"""The app in process: started with its lifespan, a client for it, and the operations it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from booking_service.config import Settings
from booking_service.main import create_app

# The committed OpenAPI document and the operations it must name.
OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi.json"
OPERATION_IDS = {
    "register",
    "login",
    "create_event",
    "book_ticket",
    "cancel_booking",
    "get_event_status",
    "list_my_bookings",
    "list_events",
    "get_event",
    "close_account",
    "health",
    "ready",
    "metrics",
    "accept_offer",
    "decline_offer",
    "list_my_history",
    "update_event",
    "close_event",
    "cancel_event",
    "list_event_bookings",
    "list_event_history",
    "check_in_ticket",
    "transfer_ticket",
}
# For operators, not clients: never rate limited, and not about bookings.
OPERATIONS_ROUTES = {"health", "ready", "metrics"}


@asynccontextmanager
async def started_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app of its own, for tests that need settings the shared `app` fixture lacks."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def http_client(
    app: FastAPI, *, address: str = "127.0.0.1", raise_app_exceptions: bool = True
) -> httpx.AsyncClient:
    """An in-process client; `address` is the client address the app sees."""
    transport = httpx.ASGITransport(
        app=app, client=(address, 50000), raise_app_exceptions=raise_app_exceptions
    )
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app built from these settings, its lifespan running."""
    async with started_app(settings) as app, http_client(app) as http:
        yield http


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every operation of the app, as (path as served, the route as declared)."""
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            routes.append((str(context.path), route))
    return routes
