"""Settings for the service under test: in process (make_settings) and served (environments)."""

from __future__ import annotations

import os
from typing import Any

from booking_service.config import Settings
from tests.support.databases import Database

TEST_SECRET = "test-secret-" + "x" * 40


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "environment": "dev",
        "jwt_secret": TEST_SECRET,
        # Cheap hashes keep the suite fast; production defaults are tested on their own.
        "password_hash_memory_kib": 8 * 1024,
        "password_hash_time_cost": 1,
        "rate_limit_enabled": False,
        # Tests expire offers when they choose (app_state(app).offer_sweeper.sweep()); the
        # background sweep has a test of its own.
        "offer_sweep_interval_seconds": 3600,
        # Tests read /status right after writing; the poll cache has tests of its own.
        "status_cache_seconds": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any service setting, plus the given ones."""
    names = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(settings)
    return env


def production_env(database: Database, **settings: str) -> dict[str, str]:
    """Settings for a served test instance as production runs it (JSON logs)."""
    return {
        "DATABASE_URL": database.url,
        "ENVIRONMENT": "prod",
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        # Small pools: the test MariaDB is shared with every other test's connections.
        "DB_POOL_SIZE": "5",
        "DB_MAX_OVERFLOW": "5",
        "STATUS_CACHE_SECONDS": "0",
        **settings,
    }
