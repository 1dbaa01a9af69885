"""Job history: every batch of the project with the token columns of `/v1/jobs/history`, and the totals."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Query, Request, Response

from kubeinfer.batch.service import InvalidBatchRequest
from kubeinfer.batch.stats import MAX_HISTORY, job_entry, job_stats
from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.schemas import BatchStatus
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer

router = APIRouter()

STATS_WINDOW = 1_000_000
STATUSES: tuple[str, ...] = get_args(BatchStatus)


@router.get("/jobs")
async def job_history(
    request: Request,
    project: Viewer,
    batches: Batches,
    status: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100,
) -> Response:
    """`status` empty (the filter's "all") lists every status."""
    if status and status not in STATUSES:
        raise InvalidBatchRequest(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
    records = await batches.all_records(project, limit, status or None)
    return page(
        request,
        "jobs.html",
        jobs=[job_entry(rec) for rec in records],
        stats=job_stats(await batches.all_records(project, STATS_WINDOW, None)),
        statuses=STATUSES,
        status=status,
        limit=limit,
    )
