"""A test we did not write by hand: schemathesis fuzzes a real server from its own OpenAPI
document (scripts/fuzz: fixed seed, small budget) and no check may fail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FUZZ = Path(__file__).resolve().parents[1] / "scripts" / "fuzz"
REQUIRED_CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "ignored_auth",
)


def test_schemathesis_finds_nothing_wrong() -> None:
    assert all(check in FUZZ.read_text() for check in REQUIRED_CHECKS)
    result = subprocess.run(
        [str(FUZZ)],
        env={**os.environ, "FUZZ_BIN": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output
    generated, passed = map(int, counts.groups())
    print(f"\nschemathesis: {generated} cases generated, {passed} passed")
    assert generated == passed > 500, output
