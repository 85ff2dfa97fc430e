"""Bodies of the liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    """The process answers (liveness probe)."""

    status: Literal["ok"] = Field(description="The process is up and serving.", examples=["ok"])


# `degraded`: out, but the worker serves without it (Redis: rate limits counted per worker).
Check = Literal["ok", "degraded"]


class Readiness(BaseModel):
    """The worker can serve (readiness probe): its database answers."""

    status: Literal["ready"] = Field(description="The database answered.", examples=["ready"])
    checks: dict[str, Check] = Field(
        description=(
            "Each dependency checked: `database` (always `ok` in a 200), and `redis` when rate "
            "limits use it: `degraded` while it is out, limits then counted by each worker."
        ),
        examples=[{"database": "ok", "redis": "ok"}, {"database": "ok", "redis": "degraded"}],
    )
