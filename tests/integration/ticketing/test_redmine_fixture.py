"""The test Redmine itself: its REST API is on, the key works, and the correlation-key
custom field can be searched exactly (the adapter's idempotency rests on that)."""

from __future__ import annotations

from tests.support.redmine import RedmineServer


def test_the_api_key_creates_and_the_custom_field_finds_exactly(
    redmine: RedmineServer, project: str
) -> None:
    field = redmine.correlation_field_id
    for key in ("k-1", "~k|2"):
        body = {
            "issue": {
                "project_id": project,
                "tracker_id": redmine.tracker_id("Bug"),
                "subject": f"about {key}",
                "custom_fields": [{"id": field, "value": key}],
            }
        }
        answer = redmine.api("POST", "/issues.json", json=body)
        assert answer.status_code == 201, answer.text
    params = {
        "project_id": project,
        "set_filter": "1",
        "f[]": ["status_id", f"cf_{field}"],
        "op[status_id]": "*",
        f"op[cf_{field}]": "=",
        f"v[cf_{field}][]": "~k|2",
    }
    found = redmine.api("GET", "/issues.json", params=params).json()["issues"]
    assert [redmine.key_of(i) for i in found] == ["~k|2"]
    assert [redmine.key_of(i) for i in redmine.issues(project)] == ["k-1", "~k|2"]
    refused = redmine.api("POST", "/issues.json", json=body, headers={"X-Redmine-API-Key": "no"})
    assert refused.status_code == 401
