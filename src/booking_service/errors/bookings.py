"""Errors of booking and cancelling (a party's tickets or place in line) and of offers."""

from __future__ import annotations

from booking_service.errors.base import AtMost, Conflict, Gone, NotFound


class AlreadyBooked(Conflict):
    code = "already_booked"
    message = "You already hold a ticket or a place in line for this event"


class NothingToCancel(NotFound):
    code = "booking_not_found"
    message = "You hold no ticket or place in line for this event"


class QuantityAboveLimit(AtMost):
    def __init__(self, limit: int = 1) -> None:
        super().__init__("quantity", f"quantity must be at most {limit} for this event")


class QuantityAboveHeld(AtMost):
    def __init__(self, held: int = 1) -> None:
        super().__init__("quantity", f"quantity must be at most {held}: that is what you hold")


class PartyTooLarge(Conflict):
    code = "party_too_large"
    message = "The party cannot fit: the event has fewer tickets"

    def __init__(self, quantity: int | None = None, capacity: int | None = None) -> None:
        message = None
        if quantity is not None and capacity is not None:
            message = f"A party of {quantity} cannot fit: the event has {capacity} tickets"
        super().__init__(message)


class OfferNotFound(NotFound):
    code = "offer_not_found"
    message = "You hold no open offer for this event"


class OfferExpired(Gone):
    code = "offer_expired"
    message = "The offer lapsed at its deadline and its ticket was passed on"


class OfferAllOrNothing(Conflict):
    code = "offer_all_or_nothing"
    message = "An offer is taken or given up whole: accept it or decline it"
