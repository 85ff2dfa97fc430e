from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` and the answer given to the request that first used it.

    Keys belong to a user: the UNIQUE key is (user_id, key_digest). The key itself is kept as
    its SHA-256 (hex), so the column has a fixed width and compares exactly on every collation
    (MariaDB's default one would call `abc` and `ABC` the same key).

    While the first request runs, `status_code` is NULL and `locked_until` says how long it
    may hold the key (its lease); its answer is stored in the same transaction as its effect:
    a result as its service returned it (`status_code` 0, its route renders it for each
    retry), or a refusal as it was sent. `attempt` counts holds: only the hold that has the
    key may store the answer.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "key_digest"),
        Index(None, "expires_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    key_digest: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the operation and the request body as validated: "the same request".
    request_digest: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status_code: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
