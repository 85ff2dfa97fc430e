"""Sale windows, ticket transfers and check-in at the door.

- event: sales_start and sales_end (the sale window, either end optional), transfers_allowed,
  and checked_in_count (confirmed tickets checked in at the door).
- booking: ticket_seed (the random half of the ticket code; the other half is a keyed tag the
  database never sees), checked_in_at, and the ended status `transferred`.
- booking_history: the actions `transferred`, `received` and `checked_in`.

Live claims made before this revision get their seed here, so every ticket has a code.

The downgrade is lossy by nature: transferred-away bookings become `cancelled`, and the history
entries of transfers and check-ins are deleted.

Revision ID: 20261201_0004
Revises: 20261124_0003
Create Date: 2026-12-01
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "20261201_0004"
down_revision: str | None = "20261124_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types and rules, so this file never changes when the models do.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
OLD_STATUSES = (
    "'confirmed', 'waitlisted', 'offered', 'cancelled', 'left', 'declined', 'expired', "
    "'event_cancelled'"
)
NEW_STATUSES = OLD_STATUSES + ", 'transferred'"
OLD_ACTIONS = (
    "'booked', 'waitlisted', 'promoted', 'offered', 'accepted', 'declined', 'expired', 'left', "
    "'cancelled', 'event_cancelled'"
)
NEW_ACTIONS = OLD_ACTIONS + ", 'transferred', 'received', 'checked_in'"
SEED_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("sales_start", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("sales_end", TIMESTAMP, nullable=True))
        batch.add_column(
            sa.Column("transfers_allowed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.add_column(
            sa.Column("checked_in_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_event_sales_window_ordered"),
            "sales_start IS NULL OR sales_end IS NULL OR sales_end > sales_start",
        )
        batch.create_check_constraint(
            op.f("ck_event_checked_in_count_in_range"),
            "checked_in_count >= 0 AND checked_in_count <= capacity",
        )

    with op.batch_alter_table("booking") as batch:
        batch.add_column(sa.Column("ticket_seed", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("checked_in_at", TIMESTAMP, nullable=True))
        batch.drop_constraint(op.f("ck_booking_status_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_status_known"), f"status IN ({NEW_STATUSES})"
        )
        batch.create_unique_constraint(op.f("uq_booking_ticket_seed"), ["ticket_seed"])

    with op.batch_alter_table("booking_history") as batch:
        batch.drop_constraint(op.f("ck_booking_history_action_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_history_action_known"), f"action IN ({NEW_ACTIONS})"
        )

    _seed_live_claims()


def _seed_live_claims() -> None:
    """A seed for every live claim made before this revision, a batch per statement."""
    booking = sa.table("booking", sa.column("id"), sa.column("active"), sa.column("ticket_seed"))
    connection = op.get_bind()
    while True:
        ids = list(
            connection.execute(
                sa.select(booking.c.id)
                .where(booking.c.active == 1, booking.c.ticket_seed.is_(None))
                .limit(SEED_BATCH)
            ).scalars()
        )
        if not ids:
            return
        connection.execute(
            booking.update()
            .where(booking.c.id == sa.bindparam("booking_id"))
            .values(ticket_seed=sa.bindparam("seed")),
            [{"booking_id": booking_id, "seed": secrets.token_hex(16)} for booking_id in ids],
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM booking_history WHERE action IN ('transferred', 'received', 'checked_in')"
    )
    op.execute("UPDATE booking SET status = 'cancelled' WHERE status = 'transferred'")
    with op.batch_alter_table("booking_history") as batch:
        batch.drop_constraint(op.f("ck_booking_history_action_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_history_action_known"), f"action IN ({OLD_ACTIONS})"
        )

    with op.batch_alter_table("booking") as batch:
        batch.drop_constraint(op.f("uq_booking_ticket_seed"), type_="unique")
        batch.drop_constraint(op.f("ck_booking_status_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_booking_status_known"), f"status IN ({OLD_STATUSES})"
        )
        batch.drop_column("checked_in_at")
        batch.drop_column("ticket_seed")

    with op.batch_alter_table("event") as batch:
        batch.drop_constraint(op.f("ck_event_checked_in_count_in_range"), type_="check")
        batch.drop_constraint(op.f("ck_event_sales_window_ordered"), type_="check")
        batch.drop_column("checked_in_count")
        batch.drop_column("transfers_allowed")
        batch.drop_column("sales_end")
        batch.drop_column("sales_start")
