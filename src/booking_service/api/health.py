"""Liveness and readiness probes: cheap, no authentication, and kept out of rate limits
(no route here is marked `@rate_limited`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from booking_service import readiness
from booking_service.errors import NotReady
from booking_service.openapi import error_responses
from booking_service.schemas.errors import ErrorDetail
from booking_service.schemas.health import Liveness, Readiness

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=Liveness,
    responses=error_responses(auth=False, limited=False, uses_database=False),
    operation_id="health",
    summary="Liveness: the process answers",
)
async def health() -> Liveness:
    """Touches nothing: a failing answer means the process should be restarted."""
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses=error_responses(NotReady(), auth=False, limited=False, uses_database=False),
    operation_id="ready",
    summary="Readiness: the database (and Redis) answer",
)
async def ready(request: Request) -> Readiness:
    """Checks the database, and Redis when rate limits are kept there, each with a short timeout.

    A 503 means: send no traffic here for now; the details name what is unreachable.
    """
    state = request.app.state
    problems = await readiness.find_problems(
        state.engine, state.redis_probe, state.settings.ready_timeout_seconds
    )
    if problems:
        raise NotReady(
            details=[
                ErrorDetail(loc=[problem.component], msg=problem.reason, type="unavailable")
                for problem in problems
            ]
        )
    checks = {"database": "ok"} | ({"redis": "ok"} if state.redis_probe else {})
    return Readiness(status="ready", checks=checks)
