"""Waiting-list offers, organizer controls and booking history.

- event: state (open/closed/cancelled), waitlist_mode (instant/offer), offer_seconds, and
  offered_count (tickets held by open offers).
- booking: the `offered` live status with its deadline (offer_expires_at), and the ended
  statuses `declined`, `expired`, `event_cancelled`; the rule tying `active` to the status no
  longer lets a NULL `active` through with a live status.
- booking_history: an append-only record of every change of every claim.

The downgrade is lossy by nature: open offers become tickets (as instant mode would have made
them), the new ended statuses become `left` or `cancelled`, and closed or cancelled events
take bookings again.

Revision ID: 20261124_0003
Revises: 20261124_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "20261124_0003"
down_revision: str | None = "20261124_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types and rules, so this file never changes when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
OLD_LIVE = "'confirmed', 'waitlisted'"
OLD_STATUSES = "'confirmed', 'waitlisted', 'cancelled', 'left'"
NEW_LIVE = "'confirmed', 'waitlisted', 'offered'"
NEW_STATUSES = (
    "'confirmed', 'waitlisted', 'offered', 'cancelled', 'left', 'declined', 'expired', "
    "'event_cancelled'"
)
ACTIONS = (
    "'booked', 'waitlisted', 'promoted', 'offered', 'accepted', 'declined', 'expired', 'left', "
    "'cancelled', 'event_cancelled'"
)


def _active_matches_status(live: str, *, strict: bool) -> str:
    # `active = 1` is NULL, not false, when active is NULL, and a CHECK passes on NULL: the
    # first revision's rule let an ended row keep a live status. `strict` closes that hole.
    first = "active IS NOT NULL AND active = 1" if strict else "active = 1"
    return f"({first} AND status IN ({live})) OR (active IS NULL AND status NOT IN ({live}))"


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=16), server_default="open", nullable=False)
        )
        batch.add_column(
            sa.Column(
                "waitlist_mode", sa.String(length=16), server_default="instant", nullable=False
            )
        )
        batch.add_column(
            sa.Column("offer_seconds", sa.Integer(), server_default="900", nullable=False)
        )
        batch.add_column(
            sa.Column("offered_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_event_offered_count_in_range"),
            "offered_count >= 0 AND available + offered_count <= capacity",
        )
        batch.create_check_constraint(
            op.f("ck_event_state_known"), "state IN ('open', 'closed', 'cancelled')"
        )
        batch.create_check_constraint(
            op.f("ck_event_waitlist_mode_known"), "waitlist_mode IN ('instant', 'offer')"
        )
        batch.create_check_constraint(
            op.f("ck_event_offer_seconds_in_range"),
            "offer_seconds >= 1 AND offer_seconds <= 604800",
        )

    with op.batch_alter_table("booking") as batch:
        batch.add_column(sa.Column("offer_expires_at", TIMESTAMP, nullable=True))
        batch.drop_constraint(op.f("ck_booking_status_known"), type_="check")
        batch.drop_constraint(op.f("ck_booking_active_matches_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_status_known"), f"status IN ({NEW_STATUSES})"
        )
        batch.create_check_constraint(
            op.f("ck_booking_active_matches_status"), _active_matches_status(NEW_LIVE, strict=True)
        )
        batch.create_check_constraint(
            op.f("ck_booking_offered_has_deadline"),
            "status <> 'offered' OR (offer_expires_at IS NOT NULL AND line_seq IS NOT NULL)",
        )
        batch.create_index(
            op.f("ix_booking_status_offer_expires_at"), ["status", "offer_expires_at"], unique=False
        )

    op.create_table(
        "booking_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("booking_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(f"action IN ({ACTIONS})", name=op.f("ck_booking_history_action_known")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_booking_history_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_booking_history_event_id_event")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_booking_history_user_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_history")),
        **TABLE_OPTIONS,
    )
    op.create_index(
        op.f("ix_booking_history_booking_id"), "booking_history", ["booking_id"], unique=False
    )
    op.create_index(
        op.f("ix_booking_history_event_id_id"), "booking_history", ["event_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_booking_history_user_id_id"), "booking_history", ["user_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("booking_history")

    # Open offers become tickets, as the original instant mode would have made them: every
    # counter stays right (confirmed + available = capacity, nobody waits beside a free ticket).
    op.execute(
        sa.text(
            "UPDATE booking SET status = 'confirmed', confirmed_at = :now, promoted_at = :now"
            " WHERE status = 'offered'"
        ).bindparams(now=datetime.now(UTC).replace(tzinfo=None))
    )
    op.execute("UPDATE booking SET status = 'left' WHERE status IN ('declined', 'expired')")
    op.execute(
        "UPDATE booking SET status = CASE WHEN confirmed_at IS NULL THEN 'left' ELSE 'cancelled'"
        " END WHERE status = 'event_cancelled'"
    )
    with op.batch_alter_table("booking") as batch:
        batch.drop_index(op.f("ix_booking_status_offer_expires_at"))
        batch.drop_constraint(op.f("ck_booking_offered_has_deadline"), type_="check")
        batch.drop_constraint(op.f("ck_booking_active_matches_status"), type_="check")
        batch.drop_constraint(op.f("ck_booking_status_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_status_known"), f"status IN ({OLD_STATUSES})"
        )
        batch.create_check_constraint(
            op.f("ck_booking_active_matches_status"), _active_matches_status(OLD_LIVE, strict=False)
        )
        batch.drop_column("offer_expires_at")

    with op.batch_alter_table("event") as batch:
        batch.drop_constraint(op.f("ck_event_offer_seconds_in_range"), type_="check")
        batch.drop_constraint(op.f("ck_event_waitlist_mode_known"), type_="check")
        batch.drop_constraint(op.f("ck_event_state_known"), type_="check")
        batch.drop_constraint(op.f("ck_event_offered_count_in_range"), type_="check")
        batch.drop_column("offered_count")
        batch.drop_column("offer_seconds")
        batch.drop_column("waitlist_mode")
        batch.drop_column("state")
