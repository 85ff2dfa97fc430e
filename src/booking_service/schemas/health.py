"""Bodies of the liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    status: Literal["ok"] = Field(description="The process is up and serving.")


class Readiness(BaseModel):
    status: Literal["ready"] = Field(description="Every dependency answered.")
    checks: dict[str, Literal["ok"]] = Field(
        description="Each dependency checked: `database`, and `redis` when rate limits use it.",
        examples=[{"database": "ok", "redis": "ok"}],
    )
