"""Liveness and readiness probes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import TemporalClientDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (does not check dependencies)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(client: TemporalClientDep, response: Response) -> dict[str, str]:
    """Ready to accept email: Temporal answers."""
    try:
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=2)
        )
    except Exception as exc:  # any failure means "not ready"; the reason is logged-safe
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "temporal": type(exc).__name__}
    return {"status": "ready", "temporal": "ok"}
