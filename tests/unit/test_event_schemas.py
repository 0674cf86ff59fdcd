"""courier.event_schemas: schema checks, failing paths, and the per-process validator cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from courier.event_schemas import (
    InvalidPayload,
    InvalidSchema,
    SchemaCache,
    compile_schema,
    validate,
)


def test_the_failing_path_names_keys_and_indexes() -> None:
    validator = compile_schema(
        {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    )
    validate(validator, {"a": [1, 2]})
    with pytest.raises(InvalidPayload) as caught:
        validate(validator, {"a": [1, "two"]})
    assert caught.value.path == "payload.a[1]"


def test_an_invalid_schema_names_where() -> None:
    with pytest.raises(InvalidSchema) as caught:
        compile_schema({"items": {"type": 5}})
    assert caught.value.path == "schema.items.type"


def test_an_unresolvable_ref_is_a_payload_problem_not_a_crash() -> None:
    validator = compile_schema({"$ref": "https://example.com/elsewhere.json"})
    with pytest.raises(InvalidPayload, match=r"\$ref"):
        validate(validator, {})


class Catalog:
    """A stand-in for the database's answers, counting what the cache asks."""

    def __init__(self) -> None:
        self.types: dict[str, tuple[int, Any]] = {}
        self.version_reads = 0
        self.schema_reads = 0

    async def version(self, tenant: uuid.UUID, name: str) -> int | None:
        self.version_reads += 1
        found = self.types.get(name)
        return None if found is None else found[0]

    async def schema(self, tenant: uuid.UUID, name: str) -> tuple[int, Any] | None:
        self.schema_reads += 1
        return self.types.get(name)


async def test_the_cache_rereads_only_after_its_recheck_and_only_the_version() -> None:
    catalog, tenant = Catalog(), uuid.uuid4()
    catalog.types["t"] = (1, {"type": "integer"})
    cache = SchemaCache(recheck_s=0.0)
    first = await cache.validator(tenant, "t", catalog.version, catalog.schema)
    second = await cache.validator(tenant, "t", catalog.version, catalog.schema)
    assert first is second and catalog.schema_reads == 1 and catalog.version_reads == 1
    catalog.types["t"] = (2, {"type": "string"})
    third = await cache.validator(tenant, "t", catalog.version, catalog.schema)
    assert third is not first and catalog.schema_reads == 2
    held = SchemaCache(recheck_s=3600.0)
    await held.validator(tenant, "t", catalog.version, catalog.schema)
    reads = (catalog.version_reads, catalog.schema_reads)
    await held.validator(tenant, "t", catalog.version, catalog.schema)
    assert (catalog.version_reads, catalog.schema_reads) == reads  # fresh: no query at all
    held.forget(tenant, "t")
    await held.validator(tenant, "t", catalog.version, catalog.schema)
    assert catalog.schema_reads == reads[1] + 1


async def test_the_cache_is_bounded_and_remembers_types_without_a_schema() -> None:
    catalog, tenant = Catalog(), uuid.uuid4()
    cache = SchemaCache(max_entries=2, recheck_s=3600.0)
    for name in ("a", "b", "c"):
        assert await cache.validator(tenant, name, catalog.version, catalog.schema) is None
    assert catalog.schema_reads == 3
    await cache.validator(tenant, "c", catalog.version, catalog.schema)
    assert catalog.schema_reads == 3  # still cached (missing from the catalog)
    await cache.validator(tenant, "a", catalog.version, catalog.schema)
    assert catalog.schema_reads == 4  # evicted as the oldest
