"""`/v1/batches`: create, retrieve, list (cursor pagination) and cancel a project's batches.

Embedded, the gateway's own queue runs them; in cluster mode (`cluster_namespace` set) each batch is a
BatchJob resource that the operator runs (kubeinfer.gateway.cluster_batches).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kubeinfer.batch.service import BatchBackend
from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.cluster_batches import cluster_batches
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.schemas import BatchCreate, BatchList, BatchObject, page

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def _batches(ctx: Ctx) -> BatchBackend:
    """The gateway's mode decides: its own queue, or BatchJobs in `cluster_namespace`."""
    namespace = ctx.settings.gateway.cluster_namespace
    if namespace is None:
        return ctx.batches
    return cluster_batches(namespace, ctx.meta, ctx.files.blobs, ctx.settings.gateway.batch_workers)


Batches = Annotated[BatchBackend, Depends(_batches)]


@router.post("", response_model=BatchObject)
async def create_batch(body: BatchCreate, project: Project, batches: Batches) -> BatchObject:
    rec = await batches.create(project, body.input_file_id, body.endpoint, body.completion_window, body.metadata)
    return BatchObject.of(rec)


@router.get("", response_model=BatchList)
async def list_batches(
    project: Project, batches: Batches, limit: Annotated[int, Query(ge=1, le=100)] = 20, after: str | None = None
) -> BatchList:
    records, more = page(await batches.page(project, limit + 1, after), limit)
    data = [BatchObject.of(r) for r in records]
    return BatchList(
        data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
    )


@router.get("/{batch_id}", response_model=BatchObject)
async def retrieve_batch(batch_id: str, project: Project, batches: Batches) -> BatchObject:
    return BatchObject.of(await batches.get(project, batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(batch_id: str, project: Project, batches: Batches) -> BatchObject:
    return BatchObject.of(await batches.cancel(project, batch_id))
