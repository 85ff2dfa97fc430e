"""One private 3-node Galera cluster for every cluster test of the run (see tests/galera.py).

Skipped with the reason where Galera cannot run here, a failure under CI=true.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from booking_service.db import connect
from tests.galera import GaleraCluster, GaleraNode, galera_cluster, galera_missing_reason
from tests.support.environment import skip_unless_available


@pytest.fixture(scope="session")
def galera() -> Iterator[GaleraCluster]:
    skip_unless_available("Galera", galera_missing_reason())
    with galera_cluster() as cluster:
        yield cluster


@dataclass(frozen=True)
class ClusterDatabase:
    """One database of the cluster, as each node serves it."""

    name: str
    nodes: list[GaleraNode]

    def url(self, node: int) -> str:
        return self.nodes[node].url(self.name)

    @property
    def urls(self) -> list[str]:
        return [node.url(self.name) for node in self.nodes]


@contextlib.asynccontextmanager
async def new_cluster_database(galera: GaleraCluster) -> AsyncIterator[ClusterDatabase]:
    """A fresh, empty database (not migrated) on a cluster of three synced nodes, dropped
    afterwards."""
    for node in galera.nodes:
        if not node.running:
            galera.restart(node)
    for node in galera.nodes:
        node.wait_synced()
    name = f"booking_cluster_{secrets.token_hex(4)}"
    first = galera.nodes[0]
    async with connect(first.url()) as engine, engine.connect() as conn:
        await conn.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
    try:
        yield ClusterDatabase(name, galera.nodes)
    finally:
        live = next(node for node in galera.nodes if node.running)
        async with connect(live.url()) as engine, engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
async def cluster_database(galera: GaleraCluster) -> AsyncIterator[ClusterDatabase]:
    async with new_cluster_database(galera) as database:
        yield database
