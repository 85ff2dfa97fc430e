"""Two service instances on two nodes of a Galera cluster: A on node 1, B on node 2.

Storms split over both, every invariant checked on every node and the nodes' tables compared;
causal reads across nodes; a node cut off (1047) and a node killed mid-storm answer 503 with
Retry-After, never 500, and nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from booking_service import migrations
from booking_service.bench.invariants import check_invariants
from booking_service.models import BookingStatus
from tests.cluster.conftest import ClusterDatabase, new_cluster_database
from tests.concurrency.storm import Answer, Call, StormResult, http_client, report, storm
from tests.galera import GaleraCluster
from tests.support.api import ApiUser, TokenFactory, api_users, create_event, my_bookings
from tests.support.apps import app_client
from tests.support.checks import booking_records
from tests.support.servers import BOOKING_SERVICE, ServerProcess, start_server
from tests.support.settings import TEST_SECRET, clean_env, make_settings

pytestmark = [pytest.mark.galera, pytest.mark.slow]

TABLES = ("user", "event", "booking", "booking_history", "outbox_message")


@dataclass
class Instances:
    database: ClusterDatabase
    a: ServerProcess  # on node 1
    b: ServerProcess  # on node 2
    tokens: TokenFactory


@pytest.fixture(scope="module")
async def cluster_db(galera: GaleraCluster) -> AsyncIterator[ClusterDatabase]:
    async with new_cluster_database(galera) as database:
        await asyncio.to_thread(migrations.upgrade, database.url(0))
        yield database


@pytest.fixture(scope="module")
def instances(
    cluster_db: ClusterDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Instances]:
    workdir = tmp_path_factory.mktemp("cluster-servers")
    servers = [
        start_server(
            workdir,
            DATABASE_URL=url,
            JWT_SECRET=TEST_SECRET,
            ENVIRONMENT="dev",
            RATE_LIMIT_ENABLED="false",
            STATUS_CACHE_SECONDS="0",
            DB_POOL_SIZE="10",
            DB_MAX_OVERFLOW="5",
        )
        for url in cluster_db.urls[:2]
    ]
    try:
        yield Instances(cluster_db, *servers, TokenFactory(make_settings(cluster_db.url(0))))
    finally:
        for server in servers:
            server.kill()


async def assert_same_on_every_node(database: ClusterDatabase, event_ids: list[int]) -> None:
    """Every invariant holds on every running node, and their tables are identical."""
    checksums = {}
    for node in database.nodes:
        if not node.running:
            continue
        node.sync()
        await check_invariants(node.url(database.name), event_ids)
        rows = node.query("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in TABLES), database.name)
        checksums[node.name] = [row[1] for row in rows]
    assert len(set(map(tuple, checksums.values()))) == 1, checksums


async def split_storm(instances: Instances, calls: list[Call]) -> StormResult:
    """Half the calls through A, half through B, all at once."""
    started = time.perf_counter()
    through_a, through_b = await asyncio.gather(
        storm(instances.a.base_url, calls[0::2], seed=1),
        storm(instances.b.base_url, calls[1::2], seed=2),
    )
    answers = [*through_a.answers, *through_b.answers]
    return StormResult(answers, time.perf_counter() - started)


async def new_event(instances: Instances, owner: ApiUser, tickets: int) -> int:
    async with http_client(instances.a.base_url) as client:
        return await create_event(client, owner.headers, tickets=tickets, name="Cluster storm")


def assert_acknowledged_present(answers: list[Answer], rows: dict[int, object]) -> None:
    acknowledged = [a for a in answers if a.status in (201, 202)]
    missing = [a.body for a in acknowledged if a.body["bookingId"] not in rows]
    assert not missing, f"acknowledged, then missing: {missing[:5]}"


async def test_booking_and_cancel_storms_split_over_two_nodes(instances: Instances) -> None:
    url = instances.database.url(0)
    owner, *users = await api_users(url, instances.tokens, 121, prefix="split")
    tickets = 40
    event_id = await new_event(instances, owner, tickets)

    booked = await split_storm(instances, [Call("book", u, event_id, "booker") for u in users])
    report("bookings split over two nodes", "galera", booked)
    booked.assert_no_server_errors()
    assert booked.statuses() == {201: tickets, 202: len(users) - tickets}
    await assert_same_on_every_node(instances.database, [event_id])

    # 30 holders cancel at once, through both instances: the first 30 in line move up.
    holders = [a.call.user for a in booked.answers if a.status == 201][:30]
    line = sorted((a for a in booked.answers if a.status == 202), key=lambda a: a.body["position"])
    cancelled = await split_storm(
        instances, [Call("cancel", u, event_id, "holder") for u in holders]
    )
    report("cancels split over two nodes", "galera", cancelled)
    cancelled.assert_no_server_errors()
    assert cancelled.statuses() == {200: len(holders)}
    await assert_same_on_every_node(instances.database, [event_id])
    rows = {r.user_id: r for r in await booking_records(url, event_id) if r.active == 1}
    promoted = [a.call.user.id for a in line[: len(holders)]]
    assert all(rows[u].status is BookingStatus.CONFIRMED for u in promoted)
    still_waiting = [a.call.user.id for a in line[len(holders) :]]
    assert all(rows[u].status is BookingStatus.WAITLISTED for u in still_waiting)


async def test_reads_of_ones_own_writes_are_causal_across_nodes(instances: Instances) -> None:
    async with (
        http_client(instances.a.base_url) as through_a,
        http_client(instances.b.base_url) as through_b,
    ):
        owner_headers = await register_and_login_across(through_a, through_b, "causal-owner")
        event_id = await create_event(through_b, owner_headers, tickets=5)
        for index in range(20):
            # Registered through A, logged in through B at once: never a 401.
            headers = await register_and_login_across(through_a, through_b, f"causal-{index}")
            # Booked through B, listed through A at once.
            response = await through_b.post("/book", json={"eventId": event_id}, headers=headers)
            assert response.status_code in (201, 202), response.text
            mine = await my_bookings(through_a, headers)
            assert [b["bookingId"] for b in mine] == [response.json()["bookingId"]]
            # And cancelled through A at once: found, not "nothing to cancel".
            response = await through_a.post("/cancel", json={"eventId": event_id}, headers=headers)
            assert response.status_code == 200, response.text


async def register_and_login_across(
    register_through: httpx.AsyncClient, login_through: httpx.AsyncClient, username: str
) -> dict[str, str]:
    body = {"username": username, "password": "secret-pw-1"}
    response = await register_through.post("/register", json=body)
    assert response.status_code == 201, response.text
    response = await login_through.post("/login", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_a_node_cut_off_from_the_cluster_answers_503_then_serves_again(
    instances: Instances, galera: GaleraCluster
) -> None:
    # Node 3 isolated from the others is not in the primary component: it answers every
    # statement with 1047 "WSREP has not yet prepared node for application use".
    node = galera.nodes[2]
    database = instances.database
    settings = make_settings(database.url(2), db_pool_size=2, db_max_overflow=0)
    user = (await api_users(database.url(0), instances.tokens, 1, prefix="isolated"))[0]
    async with app_client(settings) as client:
        assert (await client.get("/me/bookings", headers=user.headers)).status_code == 200
        node.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate = 1'")
        try:
            galera.wait_size(1, nodes=[node])
            response = await client.get("/me/bookings", headers=user.headers)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
        finally:
            node.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate = 0'")
        node.wait_synced()
        # The pool dropped the connections that saw 1047: the next request just works.
        deadline = time.monotonic() + 30
        while (await client.get("/me/bookings", headers=user.headers)).status_code != 200:
            assert time.monotonic() < deadline, "the instance did not serve again"
            await asyncio.sleep(0.1)


def test_bench_drives_both_instances_at_once(instances: Instances, tmp_path: Path) -> None:
    out = tmp_path / "hot.json"
    before = [server.output().count("/book") for server in (instances.a, instances.b)]
    run = subprocess.run(
        [
            BOOKING_SERVICE,
            "bench",
            f"--url={instances.a.base_url},{instances.b.base_url}",
            "--users=80",
            "--tickets=30",
            "--connections=16",
            f"--out={out}",
        ],
        cwd=tmp_path,
        env=clean_env(DATABASE_URL=instances.database.url(0), JWT_SECRET=TEST_SECRET),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["status_counts"] == {"201": 30, "202": 50}
    assert data["checks"]["ok"] is True
    after = [server.output().count("/book") for server in (instances.a, instances.b)]
    assert all(a > b for a, b in zip(after, before, strict=True)), "both instances booked"


async def test_a_node_killed_mid_storm_loses_nothing_acknowledged(
    instances: Instances, galera: GaleraCluster, tmp_path: Path
) -> None:
    url = instances.database.url(0)
    owner, *users = await api_users(url, instances.tokens, 161, prefix="kill")
    tickets = 60
    event_id = await new_event(instances, owner, tickets)
    node = galera.nodes[1]  # B's node

    async def kill_soon() -> None:
        await asyncio.sleep(0.3)
        node.kill()

    calls = [Call("book", u, event_id, "booker") for u in users]
    result, _ = await asyncio.gather(split_storm(instances, calls), kill_soon())
    report("bookings, B's node killed mid-storm", "galera", result)
    servers_errors = [a for a in result.answers if a.status >= 500]
    # Only B's node died: 503 with Retry-After (nothing committed, retry), never 500.
    assert all(a.status == 503 and a.retry_after for a in servers_errors), servers_errors[:3]
    assert all(a.status in (201, 202, 503) for a in result.answers)
    galera.wait_size(2)
    # Everything acknowledged is on both surviving nodes.
    for survivor in (galera.nodes[0], galera.nodes[2]):
        survivor.sync()
        rows = {
            r.id: r for r in await booking_records(survivor.url(instances.database.name), event_id)
        }
        assert_acknowledged_present(result.answers, rows)
    await assert_same_on_every_node(instances.database, [event_id])

    # B's node restarts and catches up; B serves again without being restarted itself.
    galera.restart(node)
    node.wait_synced()
    deadline = time.monotonic() + 30
    async with http_client(instances.b.base_url) as client:
        while (await client.get(f"/status/{event_id}", headers=owner.headers)).status_code != 200:
            assert time.monotonic() < deadline, "B did not serve again"
            await asyncio.sleep(0.1)
    await assert_same_on_every_node(instances.database, [event_id])
