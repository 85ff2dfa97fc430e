"""HTTP routers: thin, each validates, calls one service method and returns a schema."""

from fastapi import APIRouter

from booking_service.api import (
    auth,
    bookings,
    events,
    health,
    metrics,
    offers,
    organizer,
    tickets,
)

# Included straight into the app, busiest first: every request is matched against them in
# this order, and each level of nesting costs every request a little more.
ROUTERS: tuple[APIRouter, ...] = (
    bookings.router,
    events.router,
    auth.router,
    offers.router,
    organizer.router,
    tickets.router,
    health.router,
    metrics.router,
)
