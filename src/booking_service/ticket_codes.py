"""Ticket codes: what a holder shows at the door, and how the door tells a genuine one.

A code is 32 bytes, URL-safe base64 (43 characters): a seed of 128 bits from `secrets`, made
with the booking and kept in its row, followed by a 128-bit HMAC-SHA256 tag of that seed under
a key the database never sees (Settings.ticket_code_key). The service can show the holder their
code whenever they ask, yet a copy of the database yields no valid code: without the key there
is no tag. A transfer gives the new holder a new booking, hence a new seed and a new code.
"""

from __future__ import annotations

import base64
import binascii
import hmac

SEED_BYTES = 16
TAG_BYTES = 16
CODE_LENGTH = 43  # base64 of 32 bytes, without its padding
# What the published schema says a code looks like: the validator takes nothing else.
CODE_PATTERN = r"^[A-Za-z0-9_-]{43}$"


class TicketCodes:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, seed: bytes) -> bytes:
        return hmac.digest(self._key, b"ticket:" + seed, "sha256")[:TAG_BYTES]

    def code(self, seed_hex: str) -> str:
        """The code of the booking with this seed (as stored: hex)."""
        seed = bytes.fromhex(seed_hex)
        return base64.urlsafe_b64encode(seed + self._tag(seed)).decode().rstrip("=")

    def seed_of(self, code: str) -> str | None:
        """The seed (hex) a genuine code carries; None for anything else."""
        if len(code) != CODE_LENGTH:
            return None
        try:
            seed = base64.urlsafe_b64decode(code + "=")[:SEED_BYTES]
        except (binascii.Error, ValueError):
            return None
        # Compared whole and in constant time: also refuses other spellings of the same bytes.
        if len(seed) != SEED_BYTES or not hmac.compare_digest(self.code(seed.hex()), code):
            return None
        return seed.hex()
