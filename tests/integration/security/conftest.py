"""Security tests reuse the API fixtures: an app on a fresh database and tenants with keys."""

from __future__ import annotations

from tests.integration.api.conftest import client, make_tenant, tenant_a, tenant_b

__all__ = ["client", "make_tenant", "tenant_a", "tenant_b"]
