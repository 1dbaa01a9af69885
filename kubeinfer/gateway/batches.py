"""`/v1/batches`: create, retrieve, list (cursor pagination) and cancel a project's batches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.schemas import BatchCreate, BatchList, BatchObject, page

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post("", response_model=BatchObject)
async def create_batch(body: BatchCreate, project: Project, ctx: Ctx) -> BatchObject:
    rec = ctx.batches.create(project, body.input_file_id, body.endpoint, body.completion_window, body.metadata)
    return BatchObject.of(rec)


@router.get("", response_model=BatchList)
async def list_batches(
    project: Project, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=100)] = 20, after: str | None = None
) -> BatchList:
    records, more = page(ctx.batches.page(project, limit + 1, after), limit)
    data = [BatchObject.of(r) for r in records]
    return BatchList(
        data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
    )


@router.get("/{batch_id}", response_model=BatchObject)
async def retrieve_batch(batch_id: str, project: Project, ctx: Ctx) -> BatchObject:
    return BatchObject.of(ctx.batches.get(project, batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(batch_id: str, project: Project, ctx: Ctx) -> BatchObject:
    return BatchObject.of(ctx.batches.cancel(project, batch_id))
