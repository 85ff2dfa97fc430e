"""Running Alembic from the service: `booking-service migrate` and the test suite use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

PACKAGE_DIR = Path(__file__).resolve().parent


def script_location() -> Path:
    """The migration scripts: shipped inside the wheel, or the repository's alembic/ folder."""
    bundled = PACKAGE_DIR / "alembic"
    if (bundled / "env.py").exists():
        return bundled
    return PACKAGE_DIR.parents[1] / "alembic"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # env.py reads the URL from here; `%` must be escaped for configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
