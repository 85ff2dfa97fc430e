"""Initial schema: users, events, bookings (tickets and places in line).

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types, so this file never changes when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("username", name=op.f("uq_user_username")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "event",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("waiting_count", sa.Integer(), nullable=False),
        sa.Column("next_line_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "available >= 0 AND available <= capacity", name=op.f("ck_event_available_in_range")
        ),
        sa.CheckConstraint("capacity >= 0", name=op.f("ck_event_capacity_non_negative")),
        sa.CheckConstraint("waiting_count >= 0", name=op.f("ck_event_waiting_count_non_negative")),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], name=op.f("fk_event_owner_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        **TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_event_owner_id"), "event", ["owner_id"], unique=False)
    op.create_table(
        "booking",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active", sa.SmallInteger(), nullable=True),
        sa.Column("line_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("confirmed_at", TIMESTAMP, nullable=True),
        sa.Column("promoted_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "(active = 1 AND status IN ('confirmed', 'waitlisted'))"
            " OR (active IS NULL AND status NOT IN ('confirmed', 'waitlisted'))",
            name=op.f("ck_booking_active_matches_status"),
        ),
        sa.CheckConstraint(
            "status <> 'waitlisted' OR line_seq IS NOT NULL",
            name=op.f("ck_booking_waitlisted_has_line_seq"),
        ),
        sa.CheckConstraint(
            "status IN ('confirmed', 'waitlisted', 'cancelled', 'left')",
            name=op.f("ck_booking_status_known"),
        ),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_booking_event_id_event")),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_booking_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking")),
        sa.UniqueConstraint(
            "event_id", "user_id", "active", name=op.f("uq_booking_event_id_user_id_active")
        ),
        **TABLE_OPTIONS,
    )
    op.create_index(
        op.f("ix_booking_event_id_status_line_seq"),
        "booking",
        ["event_id", "status", "line_seq"],
        unique=False,
    )
    op.create_index(
        op.f("ix_booking_user_id_active"), "booking", ["user_id", "active"], unique=False
    )


def downgrade() -> None:
    op.drop_table("booking")
    op.drop_table("event")
    op.drop_table("user")
