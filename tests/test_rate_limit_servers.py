"""Rate limits on real server processes: several workers sharing Redis, Redis dying mid-run,
and clients on loopback that try to choose their own address with X-Forwarded-For."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.peers import RedisProcess, private_redis
from tests.support.servers import ServerProcess, serve

pytestmark = pytest.mark.slow

BUDGET = 6
PASSWORD = "password123"


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _socket_inode(server_port: int, client_port: int) -> str:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return fields[9]
    raise AssertionError(f"no server socket for client port {client_port}")


def _owner(pids: list[int], inode: str) -> int:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds socket {inode}")


@dataclass
class Answer:
    status: int
    worker: int


def request_on_new_connection(server: ServerProcess, path: str, token: str) -> Answer:
    """One request on a fresh connection, and the worker process that served it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        # Still connected (keep-alive): find which worker holds the other end (with one
        # worker, the server process serves itself).
        workers = _children(server.process.pid) or [server.process.pid]
        worker = _owner(workers, _socket_inode(server.port, client_port))
        return Answer(response.status, worker)
    finally:
        connection.close()


def login(server: ServerProcess, username: str) -> str:
    credentials = {"username": username, "password": PASSWORD}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/register", json=credentials).status_code == 201
        response = http.post("/login", json=credentials)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token


def spread_requests(server: ServerProcess, token: str) -> list[Answer]:
    """Requests on new connections until both workers have served more than the budget."""
    answers: list[Answer] = []
    while len(answers) < 120:
        answers.append(request_on_new_connection(server, "/me/bookings", token))
        served = Counter(answer.worker for answer in answers)
        if len(served) == 2 and min(served.values()) > BUDGET:
            break
    served = Counter(answer.worker for answer in answers)
    assert len(served) == 2, f"the kernel sent every connection to one worker: {served}"
    return answers


def _summary(answers: list[Answer]) -> dict[int, dict[int, int]]:
    by_worker: dict[int, Counter[int]] = {}
    for answer in answers:
        by_worker.setdefault(answer.worker, Counter())[answer.status] += 1
    return {worker: dict(statuses) for worker, statuses in by_worker.items()}


def test_two_workers_share_one_budget_on_redis(
    tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    url, prefix = shared_redis
    env = {
        "RATE_LIMIT": f"{BUDGET}/hour",
        "RATE_LIMIT_STORAGE_URL": url,
        "RATE_LIMIT_KEY_PREFIX": prefix,
    }
    with serve(tmp_path, workers=2, **env) as server:
        answers = spread_requests(server, login(server, "alice"))
    summary = _summary(answers)
    print(f"\n2 workers on Redis, budget {BUDGET}: {len(answers)} requests -> {summary}")
    statuses = Counter(answer.status for answer in answers)
    assert statuses == {200: BUDGET, 429: len(answers) - BUDGET}, summary


def test_two_workers_on_memory_count_apart(tmp_path: Path) -> None:
    # The control: without shared storage each worker grants the whole budget, which is
    # what the Redis test above would see if the workers did not share it.
    env = {"RATE_LIMIT": f"{BUDGET}/hour", "RATE_LIMIT_STORAGE_URL": "memory://"}
    with serve(tmp_path, workers=2, **env) as server:
        answers = spread_requests(server, login(server, "alice"))
    summary = _summary(answers)
    print(f"\n2 workers on memory, budget {BUDGET}: {len(answers)} requests -> {summary}")
    for worker, statuses in summary.items():
        assert statuses.get(200) == BUDGET, (worker, summary)


def _keys(redis_server: RedisProcess) -> list[bytes]:
    client = redis_server.client()
    try:
        return list(client.scan_iter(match="*"))
    finally:
        client.close()


def test_redis_going_away_fails_open_and_comes_back(tmp_path: Path) -> None:
    with private_redis(tmp_path) as redis_server:
        env = {"RATE_LIMIT": "5/hour", "RATE_LIMIT_STORAGE_URL": redis_server.url}
        with serve(tmp_path, **env) as server:
            token = login(server, "alice")
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.base_url, timeout=10, headers=headers) as http:
                assert http.get("/me/bookings").status_code == 200
                assert _keys(redis_server), "counted in Redis while it answers"

                redis_server.kill()
                during = [http.get("/me/bookings").status_code for _ in range(8)]
                # Fail open: this worker counts in memory from zero, so the whole budget again.
                assert during == [200] * 5 + [429] * 3, during
                output = server.output()
                assert "is unreachable: limits are counted per worker" in output, output
                assert "Traceback" not in output

                redis_server.start()  # empty, on the same port
                # Each worker asks Redis again RATE_LIMIT_STORAGE_RETRY_SECONDS (1) after a failure.
                deadline = time.monotonic() + 10
                while not _keys(redis_server):
                    assert time.monotonic() < deadline, "the limiter never went back to Redis"
                    assert http.get("/me/bookings").status_code in (200, 429)
                    time.sleep(0.2)
            assert "answers again" in server.output()


def _login_statuses(server: ServerProcess, forwarded_for: list[str]) -> list[int]:
    body = json.dumps({"username": "nobody", "password": "wrong-password"})
    statuses = []
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for address in forwarded_for:
            response = http.post(
                "/login",
                content=body,
                headers={"Content-Type": "application/json", "X-Forwarded-For": address},
            )
            statuses.append(response.status_code)
    return statuses


def test_a_client_cannot_choose_its_address(tmp_path: Path) -> None:
    spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    with serve(tmp_path, AUTH_RATE_LIMIT="2/hour") as server:
        assert _login_statuses(server, spoofed) == [401, 401, 429]


def test_x_forwarded_for_counts_from_a_trusted_proxy(tmp_path: Path) -> None:
    env = {"AUTH_RATE_LIMIT": "2/hour", "TRUSTED_PROXIES": "127.0.0.1"}
    with serve(tmp_path, **env) as server:
        # Through the proxy (this test, on 127.0.0.1), each client has its own budget ...
        assert _login_statuses(server, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [
            401,
            401,
            401,
        ]
        # ... and one client is still one client.
        assert _login_statuses(server, ["198.51.100.9"] * 3) == [401, 401, 429]
