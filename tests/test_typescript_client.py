"""A TypeScript client generated from openapi.json drives the whole flow against a real server.

What a front-end developer does with the README's commands: types from openapi-typescript with
its default options, calls through openapi-fetch, compiled under `tsc --strict`, run with Node.
`clients/typescript/` holds the flow and the README's example; its packages come from its
lockfile (`npm ci`, which `.ci/run` runs; this test runs it too when node_modules is not the
lockfile's). The types are generated and compiled once per session. Every answer the flow
receives is checked against the document the types came from (tests/contract.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract import Answer, Contract
from tests.support.apps import OPENAPI_FILE
from tests.support.databases import BACKENDS
from tests.support.environment import require_program, skip_unless_available
from tests.support.servers import ServerProcess, serve_fresh

CLIENT = OPENAPI_FILE.parent / "clients" / "typescript"
README = OPENAPI_FILE.parent / "README.md"
# No rate limits (the flow is a quick burst of calls; limits have tests of their own) and cheap
# password hashes (the flow signs up a dozen users; hashing costs have tests of their own).
SERVER_SETTINGS = {
    "RATE_LIMIT_ENABLED": "false",
    "PASSWORD_HASH_MEMORY_KIB": "8192",
    "PASSWORD_HASH_TIME_COST": "1",
}

pytestmark = pytest.mark.slow


class CommandFailed(AssertionError):
    """A command of the client's exited non-zero; the message holds what it printed."""


def run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run `command` in the client folder; its output, or CommandFailed showing it."""
    result = subprocess.run(
        command,
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} failed:\n{output}")
    return output


def installed_from_lockfile() -> bool:
    """node_modules holds exactly the lockfile's packages (npm keeps its own record of them)."""
    installed = CLIENT / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    locked = json.loads((CLIENT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    recorded = json.loads(installed.read_text(encoding="utf-8"))["packages"]
    return bool(recorded == {name: entry for name, entry in locked.items() if name})


@pytest.fixture(scope="session")
def compiled_client() -> Path:
    """Install (when needed), generate the types from openapi.json and compile: dist/."""
    require_program("node")
    npm = require_program("npm")
    if not installed_from_lockfile():
        try:
            run([npm, "ci", "--no-audit", "--no-fund"], timeout=300)
        except CommandFailed as failed:
            # Offline, say: a missing part like node itself (a failure under CI=true).
            skip_unless_available("The TypeScript client's npm packages", str(failed))
    run([npm, "run", "build"], timeout=300)
    return CLIENT / "dist"


@pytest.fixture(scope="module", params=BACKENDS)
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """`booking-service serve` on a fresh database: a SQLite file, or a new MariaDB database.
    The flow and the example share it: each signs up users of its own."""
    workdir = tmp_path_factory.mktemp(f"typescript-{request.param}")
    async with serve_fresh(request.param, workdir, **SERVER_SETTINGS) as running:
        yield running


def run_node(script: Path, server: ServerProcess, **env: str) -> str:
    return run(
        [require_program("node"), str(script)],
        timeout=120,
        env={"BOOKING_SERVICE_URL": server.base_url, **env},
    )


def read_answers(path: Path) -> list[Answer]:
    """The answers the flow wrote (none if it stopped before writing them)."""
    if not path.exists():
        return []
    return [Answer.from_json(item) for item in json.loads(path.read_text(encoding="utf-8"))]


def test_whole_flow_through_the_typescript_client(
    compiled_client: Path, server: ServerProcess, contract: Contract, tmp_path: Path
) -> None:
    answers_file = tmp_path / "answers.json"
    try:
        output = run_node(compiled_client / "flow.js", server, ANSWERS_FILE=str(answers_file))
    finally:
        # Even when the flow failed: an answer unlike its type is the likelier cause to show.
        answers = read_answers(answers_file)
        contract.check(answers)
    assert "flow done: " in output, output
    unseen = contract.unseen_successes(answers)
    assert not unseen, (
        "documented answers the TypeScript flow never received: drive them in "
        f"clients/typescript/src/flow.ts: {unseen}"
    )


def test_readme_example_is_the_compiled_one_and_runs(
    compiled_client: Path, server: ServerProcess
) -> None:
    readme = README.read_text(encoding="utf-8")
    [example] = re.findall(r"```ts\n(.*?)```", readme, re.DOTALL)
    assert example == (CLIENT / "src" / "example.ts").read_text(encoding="utf-8")
    output = run_node(compiled_client / "example.js", server)
    assert re.match(r"booked \d+\n", output), output
