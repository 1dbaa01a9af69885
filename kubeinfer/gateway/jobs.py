"""`/v1/jobs/stats` and `/v1/jobs/history`: token totals and throughput of the project's batches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kubeinfer.batch.stats import MAX_HISTORY, job_entry, job_stats
from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.schemas import BatchStatus, JobEntry, JobHistory, JobStats

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: Batches read for the aggregate figures; far above what one gateway accumulates.
STATS_WINDOW = 1_000_000


@router.get("/stats", response_model=JobStats)
async def stats(project: Project, batches: Batches) -> JobStats:
    return JobStats(**job_stats(await batches.all_records(project, STATS_WINDOW, None)))


@router.get("/history", response_model=JobHistory)
async def history(
    project: Project, batches: Batches, limit: Annotated[int, Query(ge=0)] = 20, status: BatchStatus | None = None
) -> JobHistory:
    """Newest first; `limit` above the maximum is clamped rather than refused, 0 gives an empty list."""
    limit = min(limit, MAX_HISTORY)
    records = await batches.all_records(project, limit, status) if limit else []
    return JobHistory(jobs=[JobEntry(**job_entry(r)) for r in records])
