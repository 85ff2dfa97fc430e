"""Async event-ticket booking API."""
