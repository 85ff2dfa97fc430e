"""The Dockerfile, docker-compose.yml and .env.example agree with Settings, the CLI and the app.

No Docker engine runs here, so these files are parsed and checked against the code itself.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from booking_service.cli import build_parser
from booking_service.config import Settings
from booking_service.main import create_app
from booking_service.ratelimit_redis import redis_client_url

ROOT = Path(__file__).resolve().parents[1]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
SECRETS = {"JWT_SECRET", "DB_PASS", "TICKET_CODE_SECRET"}
ENV_ASSIGNMENT = re.compile(r"([A-Z][A-Z0-9_]*)=(.*)")
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    return instructions


def last(instruction: str) -> str:
    return [args for keyword, args in dockerfile() if keyword == instruction][-1]


def exposed_port() -> int:
    return int(last("EXPOSE").split("/")[0])


def get_routes() -> set[str]:
    app = create_app(Settings(_env_file=None, jwt_secret="x" * 40))
    return {path for path, operations in app.openapi()["paths"].items() if "get" in operations}


def test_image_is_multi_stage_and_installs_a_built_wheel() -> None:
    steps = dockerfile()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) >= 2
    assert all("slim" in stage or "${PYTHON_IMAGE}" in stage for stage in stages)
    assert "slim" in last("ARG")
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "pip wheel" in runs
    assert not re.search(r"pip install[^&]*(\s-e\s|--editable)", runs)
    assert any(k == "COPY" and args.startswith("--from=build") for k, args in steps)


def test_image_runs_as_an_unprivileged_user() -> None:
    user = last("USER").split(":")[0]
    assert user not in {"root", "0"}


def test_no_secret_is_baked_into_the_image() -> None:
    baked: set[str] = set()
    for keyword, args in dockerfile():
        if keyword in {"ENV", "ARG"}:
            baked |= {pair.split("=", 1)[0] for pair in shlex.split(args)}
    assert baked & SETTING_NAMES <= {"ENVIRONMENT"}, "settings come from the runtime environment"


def test_default_command_serves_on_the_exposed_port() -> None:
    command = json.loads(last("CMD"))
    assert command[0] == "booking-service"
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"  # which migrates before serving
    assert args.host == "0.0.0.0"  # noqa: S104 - inside a container
    assert args.port == exposed_port()


def test_healthcheck_polls_the_liveness_route_with_python() -> None:
    options, _, command = last("HEALTHCHECK").partition("CMD ")
    assert "--interval" in options
    probe = json.loads(command)
    assert probe[0] == "python", "the slim image has no curl"
    [url] = re.findall(r"http://[^'\"]+", " ".join(probe))
    parsed = urlsplit(url)
    assert parsed.port == exposed_port()
    assert parsed.path == "/health"
    assert parsed.path in get_routes()


def test_build_context_holds_exactly_what_the_image_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "everything is left out unless listed"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for keyword, args in dockerfile():
        if keyword == "COPY" and not args.startswith("--"):
            copied |= {source.rstrip("/") for source in args.split()[:-1]}
    assert allowed == copied
    assert {"**/.env", "**/.jwt-secret"} <= set(patterns)


# --- .env.example -------------------------------------------------------------------------


def env_example() -> list[tuple[str, str, str]]:
    """(NAME, value, the comment line just above) for every assignment."""
    entries, previous = [], ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := ENV_ASSIGNMENT.fullmatch(line):
            entries.append((match.group(1), match.group(2), previous))
        previous = line
    return entries


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    names = [name for name, _, _ in env_example()]
    assert len(names) == len(set(names)), "each setting once"
    assert set(names) - SETTING_NAMES == set(), "not a setting of the service"
    assert SETTING_NAMES - set(names) == set(), "settings missing from .env.example"


def test_every_setting_in_env_example_is_explained() -> None:
    for name, _, comment in env_example():
        assert comment.startswith("# "), f"{name} needs a comment above it"
        assert len(comment) > 10, f"{name}: say what it is"


def test_env_example_holds_no_usable_secret() -> None:
    values = {name: value for name, value, _ in env_example()}
    assert all(values[name] == "" for name in SECRETS)
    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        Settings(_env_file=ROOT / ".env.example")


def test_env_example_values_are_valid_settings() -> None:
    settings = Settings(_env_file=ROOT / ".env.example", jwt_secret="s" * 48)
    assert settings.environment == "prod"
    assert settings.json_logs
    assert make_url(settings.database_url).host == "db"


# --- docker-compose.yml -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, enough for this file."""

    def replace(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)[2 + len(match.group(1)) : -1]
        if variables.get(name):
            return variables[name]
        if rest.startswith(":-"):
            return rest[2:]
        raise AssertionError(f"{name} must be set: {rest}")

    return COMPOSE_VARIABLE.sub(replace, value)


def test_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_only_reads_variables_that_are_settings() -> None:
    used = set(COMPOSE_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used <= SETTING_NAMES, ".env holds the service's settings only"


def test_api_waits_for_a_healthy_database_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api = services["api"]
    assert api["build"] == "."
    assert api["env_file"] in (".env", [".env"])
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["db"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"]
    assert "healthcheck" not in api, "the image's HEALTHCHECK on /health applies"


def test_api_can_scale_without_port_clashes(compose: dict[str, Any]) -> None:
    for port in compose["services"]["api"]["ports"]:
        assert isinstance(port, dict), "long syntax, so the host side is explicit"
        assert port["target"] == exposed_port()
        assert "published" not in port, "a fixed host port would clash at --scale api=3"


def test_api_environment_makes_settings_for_the_stack(compose: dict[str, Any]) -> None:
    environment: dict[str, str] = compose["services"]["api"]["environment"]
    assert set(environment) <= SETTING_NAMES
    dot_env = {name: value for name, value, _ in env_example()}
    dot_env |= {"DB_PASS": "a password with @ and /", "JWT_SECRET": "s" * 48}
    values = dot_env | {name: interpolate(str(v), dot_env) for name, v in environment.items()}
    settings = Settings(_env_file=None, **{name.lower(): value for name, value in values.items()})
    database = make_url(settings.database_url)
    assert database.host == "db"
    assert database.host in compose["services"]
    assert database.password == "a password with @ and /"
    assert database.get_backend_name() == "mysql"
    redis = make_url(settings.rate_limit_storage_url)
    assert redis.host == "redis"
    assert redis.host in compose["services"]
    assert redis_client_url(settings.rate_limit_storage_url), "GET /ready checks it"


def test_database_is_mariadb_10_11_or_mysql_8_on_a_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    image, _, tag = db["image"].partition(":")
    version = tuple(int(part) for part in tag.split(".")[:2])
    assert (image == "mariadb" and version >= (10, 11)) or (image == "mysql" and version >= (8,))
    volume, _, mount = db["volumes"][0].partition(":")
    assert mount == "/var/lib/mysql"
    assert volume in compose["volumes"]


def test_replicas_get_longer_to_stop_than_requests_get_to_finish(
    compose: dict[str, Any],
) -> None:
    grace = seconds(compose["services"]["api"]["stop_grace_period"])
    dot_env = {name: value for name, value, _ in env_example()}
    assert grace > int(dot_env["SHUTDOWN_TIMEOUT_SECONDS"])
    assert grace > Settings.model_fields["shutdown_timeout_seconds"].default
