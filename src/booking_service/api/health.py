"""Liveness and readiness probes: cheap, no authentication, and kept out of rate limits
(no route here is marked `@rate_limited`)."""

from __future__ import annotations

from fastapi import APIRouter

from booking_service.deps import ReadinessDep
from booking_service.errors import NotReady
from booking_service.openapi import error_responses
from booking_service.schemas.errors import ErrorDetail
from booking_service.schemas.health import Check, Liveness, Readiness

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
    summary="Readiness: the database answers (Redis reported, degraded when out)",
)
async def ready(readiness: ReadinessDep) -> Readiness:
    """Checks the database, and Redis when rate limits are kept there, each with a short timeout.

    A 503 means: send no traffic here for now; the details name what is unreachable. Redis
    out is not a reason: rate limits then fail open (each worker counts in its own memory), so
    the answer stays 200 with `"redis": "degraded"`.
    """
    report = await readiness.check()
    if report.unready:
        raise NotReady(
            details=[
                ErrorDetail(loc=[problem.component], msg=problem.reason, type=kind)
                for kind, found in (("unavailable", report.unready), ("degraded", report.degraded))
                for problem in found
            ]
        )
    checks: dict[str, Check] = {"database": "ok"}
    if readiness.redis is not None:
        checks["redis"] = "degraded" if report.degraded else "ok"
    return Readiness(status="ready", checks=checks)
