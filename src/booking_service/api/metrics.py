"""GET /metrics: Prometheus text format, for a scraper on the private network."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from booking_service import metrics
from booking_service.openapi import error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **error_responses(auth=False, limited=False, uses_database=False),
    },
    operation_id="metrics",
    summary="Prometheus metrics",
)
def get_metrics() -> Response:
    """Request counts and latencies by route and status, booking outcomes and lock retries,
    summed over all workers.

    A plain `def`: FastAPI runs it in a thread, so reading the workers' files never stalls the
    event loop.
    """
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
