"""Bounds shared by the tables, the request schemas and the services (no imports, no cycles)."""

DEFAULT_OFFER_SECONDS = 15 * 60
MAX_OFFER_SECONDS = 7 * 24 * 60 * 60
