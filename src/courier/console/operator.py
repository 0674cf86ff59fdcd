"""Who is signed in to the console: the tenant, the API key or portal link, its role,
its destination scope and the tenant's branding."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Branding:
    """What the tenant set for the console header (each may be None)."""

    display_name: str | None = None
    accent_color: str | None = None  # #rrggbb, checked by the API and the table
    logo_url: str | None = None  # https only


@dataclass(frozen=True, slots=True)
class Operator:
    """A signed-in console user: the tenant, and the API key or portal link that signed in,
    with its role and, for a scoped portal link, the destinations it may see."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID  # the API key, or the portal session when `portal`
    tenant_name: str
    csrf: str  # the token this session's forms carry
    role: str = "operator"
    scope: frozenset[uuid.UUID] | None = None  # None: every destination of the tenant
    portal: bool = False
    branding: Branding = Branding()

    @property
    def actor(self) -> str:
        """How audit records name console actions (the key or link id, never a secret)."""
        return f"portal:{self.key_id}" if self.portal else f"console:{self.key_id}"

    @property
    def can_write(self) -> bool:
        return self.role == "operator"

    def sees(self, destination_id: uuid.UUID | None) -> bool:
        """Whether this session may see anything of the destination (None: no filter)."""
        return self.scope is None or destination_id is None or destination_id in self.scope
