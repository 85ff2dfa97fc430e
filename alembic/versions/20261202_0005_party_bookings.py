"""Party bookings: several tickets in one booking, and a line that keeps parties whole.

- event: max_per_user (tickets one account may hold for it, default 1: the behaviour before)
  and waiting_tickets (tickets wanted by the whole line, beside waiting_count, its entries).
- booking: quantity (tickets of the claim: confirmed, offered or wanted in line).
- booking_history: quantity (tickets the entry concerns).

Every claim made before this revision holds one ticket, so the counters already count tickets
and waiting_tickets starts as waiting_count.

The downgrade is lossy by nature: a party keeps one of its tickets, the others go back to the
pool (counters recomputed from the rows, as one ticket per claim).

Revision ID: 20261202_0005
Revises: 20261201_0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0005"
down_revision: str | None = "20261201_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(
            sa.Column("max_per_user", sa.Integer(), server_default="1", nullable=False)
        )
        batch.add_column(
            sa.Column("waiting_tickets", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_check_constraint(op.f("ck_event_max_per_user_positive"), "max_per_user >= 1")
        batch.create_check_constraint(
            op.f("ck_event_waiting_tickets_non_negative"), "waiting_tickets >= 0"
        )
    op.execute("UPDATE event SET waiting_tickets = waiting_count")

    with op.batch_alter_table("booking") as batch:
        batch.add_column(sa.Column("quantity", sa.Integer(), server_default="1", nullable=False))
        batch.create_check_constraint(op.f("ck_booking_quantity_positive"), "quantity >= 1")

    with op.batch_alter_table("booking_history") as batch:
        batch.add_column(sa.Column("quantity", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    # One ticket per claim from here on: the counters follow the rows again.
    op.execute(
        "UPDATE event SET offered_count = (SELECT COUNT(*) FROM booking"
        " WHERE booking.event_id = event.id AND booking.status = 'offered')"
    )
    op.execute(
        "UPDATE event SET available = capacity - offered_count - (SELECT COUNT(*) FROM booking"
        " WHERE booking.event_id = event.id AND booking.status = 'confirmed')"
    )
    op.execute(
        "UPDATE event SET checked_in_count = (SELECT COUNT(*) FROM booking"
        " WHERE booking.event_id = event.id AND booking.status = 'confirmed'"
        " AND booking.checked_in_at IS NOT NULL)"
    )
    with op.batch_alter_table("booking_history") as batch:
        batch.drop_column("quantity")

    with op.batch_alter_table("booking") as batch:
        batch.drop_constraint(op.f("ck_booking_quantity_positive"), type_="check")
        batch.drop_column("quantity")

    with op.batch_alter_table("event") as batch:
        batch.drop_constraint(op.f("ck_event_waiting_tickets_non_negative"), type_="check")
        batch.drop_constraint(op.f("ck_event_max_per_user_positive"), type_="check")
        batch.drop_column("waiting_tickets")
        batch.drop_column("max_per_user")
