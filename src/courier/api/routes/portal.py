"""/v1/portal-sessions: one-time links that sign their holder in to the console;
/v1/tenant/branding: the display name, accent colour and logo the console shows; and
/v1/tenant/operations-destination: the destination that receives the tenant's
`destination.disabled` and `delivery.dead_lettered` events as deliveries of their own
(the trigger in db/postgres/021_operations_notifications.sql makes them).

A link signs in once, before it expires and unless it was revoked (a revoked link's
console sessions end at their next request), as the calling tenant with the role asked for,
limited to the destinations named (each must be one of the tenant's, else 422 naming it).
Only the SHA-256 of the link's token is stored (courier.portal).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from courier import portal
from courier.api.auth import CallerDep
from courier.api.openapi import errors
from courier.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, after_id, keyset_page
from courier.api.portal_schemas import (
    Branding,
    BrandingUpdate,
    OperationsDestination,
    OperationsDestinationSet,
    PortalSession,
    PortalSessionCreate,
    PortalSessionCreated,
    PortalSessionsRevoked,
)
from courier.api.schemas import Page
from courier.store import portal as store
from courier.web.deps import ConnDep
from courier.web.problems import NotFound, invalid_field

router = APIRouter(tags=["portal"])


@router.post(
    "/v1/portal-sessions",
    status_code=status.HTTP_201_CREATED,
    summary="Create a one-time console link for this tenant, a role and some destinations",
    response_model=PortalSessionCreated,
    responses=errors(413, 422),
)
async def create_portal_session(
    body: PortalSessionCreate, caller: CallerDep, conn: ConnDep, request: Request
) -> PortalSessionCreated:
    scope = body.destination_ids
    if scope is not None:
        owned = await store.owned_destinations(conn, caller.tenant_id, scope)
        for index, destination_id in enumerate(scope):
            if destination_id not in owned:
                # Another tenant's destination reads exactly as a missing one.
                raise invalid_field(f"destination_ids[{index}]", "no such destination")
        scope = list(dict.fromkeys(scope))
    token = portal.new_token()
    row = await store.create_session(
        conn,
        caller.tenant_id,
        token_hash=portal.token_hash(token),
        role=body.role,
        destination_ids=scope,
        actor=caller.actor,
        expires_in=body.expires_in_seconds,
    )
    base = str(request.base_url).rstrip("/")
    url = f"{base}{portal.LINK_PATH}{token}"
    return PortalSessionCreated(id=row["id"], url=url, expires_at=row["expires_at"])


@router.get(
    "/v1/portal-sessions",
    summary="List this tenant's portal links, newest first (never their tokens)",
    response_model=Page[PortalSession],
    responses=errors(422),
)
async def list_portal_sessions(
    caller: CallerDep,
    conn: ConnDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[PortalSession]:
    rows = await store.list_sessions(conn, caller.tenant_id, after=after_id(cursor), limit=limit)
    return keyset_page(PortalSession, rows, limit)


@router.delete(
    "/v1/portal-sessions/{portal_session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a portal link: it cannot be opened, and the console sessions it started end",
    response_class=Response,
    responses=errors(404, 422),
)
async def revoke_portal_session(
    portal_session_id: uuid.UUID, caller: CallerDep, conn: ConnDep
) -> None:
    if not await store.session_exists(conn, caller.tenant_id, portal_session_id):
        raise NotFound("portal session")
    await store.revoke(conn, caller.tenant_id, portal_session_id, caller.actor)


@router.delete(
    "/v1/portal-sessions",
    summary="Revoke every portal link of this tenant, ending their console sessions",
    response_model=PortalSessionsRevoked,
    responses=errors(422),
)
async def revoke_all_portal_sessions(caller: CallerDep, conn: ConnDep) -> PortalSessionsRevoked:
    revoked = await store.revoke(conn, caller.tenant_id, None, caller.actor)
    return PortalSessionsRevoked(revoked=len(revoked))


@router.get(
    "/v1/tenant/branding",
    summary="Read the console's branding for this tenant",
    response_model=Branding,
    responses=errors(422),
)
async def get_branding(caller: CallerDep, conn: ConnDep) -> Branding:
    row = await store.branding(conn, caller.tenant_id)
    assert row is not None  # the caller's key names a live tenant
    return Branding.model_validate(row)


@router.patch(
    "/v1/tenant/branding",
    summary="Change the console's branding: display name, accent colour, logo URL",
    response_model=Branding,
    responses=errors(413, 422),
)
async def update_branding(body: BrandingUpdate, caller: CallerDep, conn: ConnDep) -> Branding:
    current = await store.branding(conn, caller.tenant_id)
    assert current is not None
    changes = body.model_dump(exclude_unset=True)
    if changes.get("accent_color"):
        changes["accent_color"] = changes["accent_color"].lower()
    row = await store.update_branding(conn, caller.tenant_id, {**current, **changes})
    return Branding.model_validate(row)


@router.get(
    "/v1/tenant/operations-destination",
    summary="Read which destination receives this tenant's operator notifications",
    response_model=OperationsDestination,
    responses=errors(422),
)
async def get_operations_destination(caller: CallerDep, conn: ConnDep) -> OperationsDestination:
    return OperationsDestination(
        destination_id=await store.operations_destination(conn, caller.tenant_id)
    )


@router.put(
    "/v1/tenant/operations-destination",
    summary="Name the destination that receives this tenant's operator notifications",
    response_model=OperationsDestination,
    responses=errors(413, 422),
)
async def set_operations_destination(
    body: OperationsDestinationSet, caller: CallerDep, conn: ConnDep
) -> OperationsDestination:
    if not await store.set_operations_destination(
        conn, caller.tenant_id, body.destination_id, caller.actor
    ):
        # Another tenant's destination reads exactly as a missing one.
        raise invalid_field("destination_id", "no such destination")
    return OperationsDestination(destination_id=body.destination_id)


@router.delete(
    "/v1/tenant/operations-destination",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop sending this tenant's operator notifications anywhere",
    response_class=Response,
    responses=errors(422),
)
async def clear_operations_destination(caller: CallerDep, conn: ConnDep) -> None:
    await store.set_operations_destination(conn, caller.tenant_id, None, caller.actor)
