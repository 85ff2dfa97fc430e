"""Bodies of the liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    """The process answers (liveness probe)."""

    status: Literal["ok"] = Field(description="The process is up and serving.", examples=["ok"])


class Readiness(BaseModel):
    """Every dependency answered (readiness probe)."""

    status: Literal["ready"] = Field(description="Every dependency answered.", examples=["ready"])
    checks: dict[str, Literal["ok"]] = Field(
        description="Each dependency checked: `database`, and `redis` when rate limits use it.",
        examples=[{"database": "ok", "redis": "ok"}],
    )
