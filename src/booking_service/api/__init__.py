"""HTTP routers: thin, each validates, calls one service method and returns a schema."""

from fastapi import APIRouter

from booking_service.api import auth, bookings, events, health, metrics, offers, organizer

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(events.router)
api_router.include_router(bookings.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(offers.router)
api_router.include_router(organizer.router)
