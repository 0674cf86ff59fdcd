"""/v1/audit: the tenant's audit records, newest first."""

from __future__ import annotations

from fastapi import APIRouter

from courier.api.auth import CallerDep
from courier.api.openapi import errors
from courier.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, after_id, keyset_page
from courier.api.schemas import AuditRecord, Page
from courier.store import resources
from courier.web.deps import ConnDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    summary="List the tenant's audit records, newest first",
    response_model=Page[AuditRecord],
    responses=errors(422),
)
async def list_audit_records(
    caller: CallerDep,
    conn: ConnDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[AuditRecord]:
    rows = await resources.list_audit_records(
        conn, caller.tenant_id, after=after_id(cursor), limit=limit
    )
    return keyset_page(AuditRecord, rows, limit)
