"""Rate limits kept in Redis, on real server processes: shared by workers and servers, never
blocking the event loop, and failing open (Redis killed, hung, back) with /ready still 200."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from booking_service.bench.delay_proxy import DelayProxy
from tests.support.peers import RedisProcess, private_redis
from tests.support.servers import ServerProcess, serve
from tests.test_rate_limit_servers import Answer, login, request_on_new_connection

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 0.05  # RATE_LIMIT_STORAGE_TIMEOUT_SECONDS
# What a loaded shared machine may add to an answer on top of the limiter's own waits.
MARGIN_SECONDS = 0.5


def test_a_burst_gets_one_answer_across_workers_and_servers(
    tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    url, prefix = shared_redis
    env = {"RATE_LIMIT": "1/second", "RATE_LIMIT_STORAGE_URL": url, "RATE_LIMIT_KEY_PREFIX": prefix}
    # Two servers from one directory: one SQLite database and one dev secret, so one token.
    with serve(tmp_path, workers=2, **env) as first, serve(tmp_path, **env) as second:
        servers = [first, second]
        for attempt in range(5):
            token = login(first, f"user{attempt}")
            time.sleep(1.1)  # login's own requests are other endpoints, but let a second pass
            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(_request_one_of(servers, token), range(16)))
            took = time.monotonic() - started
            processes = {(server, answer.worker) for server, answer in answers}
            # A fair burst: within one window, reaching both workers of the first server and
            # the second server. Otherwise (a slow machine, an unlucky kernel) try again.
            if took < 0.9 and len(processes) == 3:
                break
        else:
            pytest.fail(f"no burst within a second reached all three workers: {processes}")
    statuses = Counter(answer.status for _, answer in answers)
    assert statuses == {200: 1, 429: 15}, (statuses, took)


def _request_one_of(
    servers: list[ServerProcess], token: str
) -> Callable[[int], tuple[int, Answer]]:
    def request(index: int) -> tuple[int, Answer]:
        server = index % len(servers)
        return server, request_on_new_connection(servers[server], "/me/bookings", token)

    return request


@dataclass
class Timed:
    status: int
    seconds: float
    body: dict[str, object]


class Client:
    """One user's limited requests and unauthenticated probes, each timed."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self._http = httpx.Client(base_url=server.base_url, timeout=10)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, *, limited: bool = True) -> Timed:
        started = time.monotonic()
        response = self._http.get(path, headers=self._headers if limited else None)
        return Timed(response.status_code, time.monotonic() - started, response.json())

    def close(self) -> None:
        self._http.close()


def _keys(redis_server: RedisProcess) -> int:
    client = redis_server.client()
    try:
        return sum(1 for _ in client.scan_iter(match="*"))
    finally:
        client.close()


def _counted_in_redis(redis_server: RedisProcess) -> int:
    client = redis_server.client()
    try:
        return sum(int(client.get(key) or 0) for key in client.scan_iter(match="*"))
    finally:
        client.close()


def _serve_while_out(client: Client, seconds: float, slowest: float) -> list[Timed]:
    """Limited requests and readiness probes for `seconds`: every one served, none slow."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get("/me/bookings")
        assert answer.status == 200, answer
        assert answer.seconds < slowest, answer
        answers.append(answer)
        ready = client.get("/ready", limited=False)
        assert (ready.status, ready.body["checks"]) == (
            200,
            {"database": "ok", "redis": "degraded"},
        )
    return answers


def _until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_redis_killed_hung_and_back(tmp_path: Path) -> None:
    with private_redis(tmp_path) as redis_server:
        env = {
            "RATE_LIMIT": "100000/hour",
            "RATE_LIMIT_STORAGE_URL": redis_server.url,
            "RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            "RATE_LIMIT_STORAGE_RETRY_SECONDS": "1",
            "READY_TIMEOUT_SECONDS": "0.3",
        }
        with serve(tmp_path, workers=2, **env) as server:
            client = Client(server, login(server, "alice"))
            try:
                counted = _counted_in_redis(redis_server)  # the login's, per address
                assert client.get("/me/bookings").status == 200
                assert _counted_in_redis(redis_server) == counted + 1
                ready = client.get("/ready", limited=False)
                assert ready.body["checks"] == {"database": "ok", "redis": "ok"}

                # Killed: refused at once, so answers take no longer than usual.
                redis_server.kill()
                _serve_while_out(client, 2, slowest=MARGIN_SECONDS)
                output = server.output()
                assert "is unreachable: limits are counted per worker" in output
                warnings = output.count("rate limit storage redis://127.0.0.1")
                assert 1 <= warnings <= 2, "one warning per worker and outage"

                # Back, empty, on the same port: /ready at once, limits within the retry time.
                redis_server.start()
                _until(
                    lambda: client.get("/ready", limited=False).body["checks"]["redis"] == "ok",
                    2,
                    "/ready says redis ok again",
                )
                _until(
                    lambda: client.get("/me/bookings").status == 200 and _keys(redis_server) > 0,
                    5,
                    "limits counted in Redis again",
                )

                # Hung: connections accepted, nothing answered. A request waits for the call
                # on its way and its own, at most; after one timeout a worker leaves Redis be.
                redis_server.pause()
                answers = _serve_while_out(client, 3, slowest=2 * TIMEOUT_SECONDS + MARGIN_SECONDS)
                slow = [a for a in answers if a.seconds >= TIMEOUT_SECONDS]
                # Per worker: the first request, then one per retry second at most.
                assert len(slow) <= 2 * (1 + 3), [round(a.seconds, 3) for a in answers]
                assert "Traceback" not in server.output()

                redis_server.resume()
                before = _counted_in_redis(redis_server)
                _until(
                    lambda: (
                        client.get("/me/bookings").status == 200
                        and _counted_in_redis(redis_server) > before
                    ),
                    5,
                    "limits counted in Redis again after the pause",
                )
                _until(
                    lambda: client.get("/ready", limited=False).body["checks"]["redis"] == "ok",
                    2,
                    "/ready says redis ok again after the pause",
                )
            finally:
                client.close()
        output = server.output()
    assert "answers again: limits are shared" in output
    assert " 500 " not in output
    assert " 503 " not in output


def test_a_slow_redis_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """Every limited request waits 300 ms for Redis; an unlimited route answers meanwhile."""
    with (
        private_redis(tmp_path) as redis_server,
        DelayProxy(("127.0.0.1", redis_server.port), 0.3) as proxy,
    ):
        env = {
            "RATE_LIMIT": "100000/hour",
            "RATE_LIMIT_STORAGE_URL": f"redis://127.0.0.1:{proxy.port}/0",
            "RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": "2",  # wait for Redis, however far
        }
        with serve(tmp_path, **env) as server:
            token = login(server, "alice")
            counted_before = _counted_in_redis(redis_server)  # the login's, per address
            limited: list[Timed] = []
            done = threading.Event()

            def hammer() -> None:
                client = Client(server, token)
                try:
                    while not done.is_set():
                        limited.append(client.get("/me/bookings"))
                finally:
                    client.close()

            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for thread in threads:
                thread.start()
            probe = Client(server, token)
            try:
                time.sleep(0.5)  # the hammering is under way
                health = [probe.get("/health", limited=False) for _ in range(20)]
            finally:
                done.set()
                for thread in threads:
                    thread.join()
                probe.close()
        counted = _counted_in_redis(redis_server)
    assert limited
    assert all(answer.status == 200 and answer.seconds >= 0.3 for answer in limited), limited
    assert counted - counted_before == len(limited), "every limited request was counted in Redis"
    # A blocking call would hold /health for the 300 ms round trip, or more.
    seconds = sorted(answer.seconds for answer in health)
    assert seconds[len(seconds) // 2] < 0.05, seconds
    assert seconds[-1] < 0.25, seconds
