"""What importing a part of the service loads: the layers below the routers stay free of the
web stack and the metrics, and the command loads the bench only for `bench`.

Each check runs in a fresh interpreter, so nothing another test imported counts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_loaded_by(code: str) -> set[str]:
    script = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "module",
    [
        "booking_service.models",
        "booking_service.errors",
        "booking_service.db",
        "booking_service.repositories.events",
        "booking_service.services.coalescer",
        "booking_service.services.booking_rules",
        "booking_service.services.organizer",
    ],
)
def test_models_and_services_load_no_web_stack_and_no_metrics(module: str) -> None:
    loaded = modules_loaded_by(f"import {module}")
    assert module in loaded
    assert packages(loaded).isdisjoint({"fastapi", "starlette", "prometheus_client"})
    assert "booking_service.metrics" not in loaded


def test_serve_does_not_load_the_bench() -> None:
    loaded = modules_loaded_by(
        "from booking_service.cli import build_parser\nbuild_parser().parse_args(['serve'])"
    )
    assert "booking_service.cli" in loaded
    assert not any(name.startswith("booking_service.bench") for name in loaded)


def test_bench_options_still_reach_the_bench(capsys: pytest.CaptureFixture[str]) -> None:
    from booking_service.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--scenario" in capsys.readouterr().out
