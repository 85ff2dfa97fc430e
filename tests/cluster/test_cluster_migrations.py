"""Replicas on different Galera nodes starting at once: every one of them comes up, the schema is
built once, and a migration lease left by a killed process is taken over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection

from booking_service import migration_lock, migrations
from booking_service.db import connect
from booking_service.models.base import Base
from tests.cluster.conftest import ClusterDatabase
from tests.support.servers import start_server
from tests.support.settings import TEST_SECRET

pytestmark = [pytest.mark.galera, pytest.mark.slow]

ATTEMPTS = 3


def _schema(connection: Connection) -> tuple[set[str], list[Any]]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, type_, _p: name != "migration_lease",
        },
    )
    tables = set(inspect(connection).get_table_names())
    return tables, list(compare_metadata(context, Base.metadata))


async def assert_schema_on_every_node(database: ClusterDatabase) -> None:
    for node, url in zip(database.nodes, database.urls, strict=True):
        # The DDL ran on one node; the others apply it in order, a moment later.
        node.sync()
        async with connect(url) as engine, engine.connect() as conn:
            tables, diff = await conn.run_sync(_schema)
            assert tables >= set(Base.metadata.tables), url
            assert diff == [], url


async def test_instances_on_three_nodes_start_together(
    cluster_database: ClusterDatabase, tmp_path: Path
) -> None:
    # Each attempt on a database of its own, empty: every instance runs the migrations at once.
    for attempt in range(ATTEMPTS):
        name = f"{cluster_database.name}_{attempt}"
        first = cluster_database.nodes[0]
        first.query(f"CREATE DATABASE `{name}`")
        database = ClusterDatabase(name, cluster_database.nodes)
        try:
            workdir = tmp_path / f"attempt-{attempt}"
            workdir.mkdir()
            starts = [
                asyncio.to_thread(
                    start_server,
                    workdir,
                    DATABASE_URL=url,
                    JWT_SECRET=TEST_SECRET,
                    ENVIRONMENT="dev",
                    DB_POOL_SIZE="2",
                )
                for url in database.urls
            ]
            servers = await asyncio.gather(*starts, return_exceptions=True)
            started = [s for s in servers if not isinstance(s, BaseException)]
            for server in started:
                assert server.stop() == 0, server.output()
            failures = [s for s in servers if isinstance(s, BaseException)]
            assert not failures, f"attempt {attempt}: {failures[0]}"
            await assert_schema_on_every_node(database)
        finally:
            first.query(f"DROP DATABASE IF EXISTS `{name}`")


async def test_a_lease_left_by_a_killed_migrator_is_taken_over(
    cluster_database: ClusterDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process that died holding the lease stops beating it: after LEASE_STALE_SECONDS of the
    # same beat, the next migrator (here on another node) takes it over and migrates.
    monkeypatch.setattr(migration_lock, "LEASE_STALE_SECONDS", 1.0)
    lease = migration_lock.lease
    async with connect(cluster_database.url(0)) as engine, engine.begin() as conn:
        await conn.run_sync(lease.metadata.create_all)
        await conn.execute(insert(lease).values(name="alembic", holder="gone:1:dead", beat=7))
    await asyncio.to_thread(migrations.upgrade, cluster_database.url(1))
    await assert_schema_on_every_node(cluster_database)
    async with connect(cluster_database.url(2)) as engine, engine.connect() as conn:
        assert (await conn.execute(select(lease))).all() == []
